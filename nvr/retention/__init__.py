"""Deleting recordings once their group's retention has passed."""

"""Building playable MP4 clips out of stored segments."""

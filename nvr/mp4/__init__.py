"""Reading and rewriting ISO BMFF (fragmented MP4) segment files."""

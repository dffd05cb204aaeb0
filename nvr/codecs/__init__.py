"""Codec parameter sets (H.264, H.265, AAC) and the MP4 decoder records built from them."""

"""Media formats: type detection from magic bytes, the streaming structure checks, Pillow's
header read."""

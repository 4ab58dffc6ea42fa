"""koofrfs/emulator package."""

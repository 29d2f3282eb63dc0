#!/usr/bin/env python3
"""embed.py IN OUT NAME: writes OUT, a C file defining
   const unsigned char NAME[] = { the bytes of IN, then a NUL };
   const size_t NAME_len = the number of bytes of IN;
A byte array rather than a string literal: ISO C caps the length of a
literal (4095 bytes) and -Wpedantic enforces it."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write("/* generated from %s by embed.py: do not edit */\n#include <stddef.h>\n\n" % src.split("/")[-1])
    f.write("extern const unsigned char %s[];\nextern const size_t %s_len;\n\n" % (name, name))
    f.write("const unsigned char %s[] = {\n" % name)
    for i in range(0, len(data), 16):
        f.write("\t" + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",\n")
    f.write("\t0x00\n};\nconst size_t %s_len = %d;\n" % (name, len(data)))

# Writes a C file defining `const char NAME[]` (the bytes of IN, NUL-terminated) and
# `const size_t NAME_len`. Inputs: IN, OUT, NAME.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
set(body "/* Generated from ${IN} by cmake/embed_file.cmake. Do not edit. */\n#include <stddef.h>\n")
string(APPEND body "const char ${NAME}[] = {${bytes} 0x00};\nconst size_t ${NAME}_len = ${len};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)

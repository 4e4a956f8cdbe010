#pragma once
#include <zlib.h>

/// inflateInit2 is a macro; Swift cannot call it directly.
static inline int pilottrace_inflateInit2(z_streamp strm, int windowBits) {
    return inflateInit2(strm, windowBits);
}

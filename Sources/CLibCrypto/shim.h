#pragma once
// OpenSSL's libcrypto, for SHA-256 of capture files only: its assembly uses the CPU's SHA extensions (about 2 GB/s
// here, 30 times the pure Swift SHA256 in PilotTraceWire, which stays for everything else).
#include <openssl/evp.h>

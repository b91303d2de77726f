// DATACAP_API marks the symbols exported from the shared library; everything else is
// hidden (the library is compiled with -fvisibility=hidden).
#pragma once

#if defined(DATACAP_STATIC)
#define DATACAP_API
#elif defined(DATACAP_BUILDING)
#define DATACAP_API __attribute__((visibility("default")))
#else
#define DATACAP_API __attribute__((visibility("default")))
#endif

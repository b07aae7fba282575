#ifndef EDGE_ROUTER_CNGHTTP2_SHIM_H
#define EDGE_ROUTER_CNGHTTP2_SHIM_H

// The system's nghttp2 (Debian 12: 1.52, libnghttp2-dev). Its header imports into Swift as it is:
// no macros to wrap. Only the original API is used (the `*2` variants arrived in 1.61).
#include <nghttp2/nghttp2.h>

#endif

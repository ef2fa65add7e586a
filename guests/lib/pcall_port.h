/* The platform call's port (docs/platform-call.md), for guests in C and in assembly. */
#pragma once
#define PLATFORM_CALL_PORT 0x0ff0

/* uart_echo_poll: uart_echo.c polling LSR instead of taking the UART's interrupt. */
#define UART_ECHO_POLL 1
#include "uart_echo.c"

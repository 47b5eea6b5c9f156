/* err.h — libuv's error codes as SS codes: the one boundary where they meet.
 *
 * libuv errors are negative errno values and SS codes are small negative
 * numbers, so one int cannot tell them apart (UV_EPERM == SS_NOMEM == -1).
 * Every uv_* result that leaves net/ goes through net_err_from_uv first;
 * nothing above net/ sees a raw libuv code. */
#ifndef SS_NET_ERR_H
#define SS_NET_ERR_H

/* 0 for 0 (and for a positive count); else the SS code for the failure:
 * SS_IN_USE (address in use), SS_UNAVAILABLE (address not on this host),
 * SS_FORBIDDEN (EACCES, EPERM), SS_NOMEM, SS_INVAL, SS_CLOSED (the peer
 * ended: EOF, reset, broken pipe; or cancelled), SS_TIMEOUT, else SS_IO. */
int net_err_from_uv(int uv_err);

#endif

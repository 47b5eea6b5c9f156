/* web.h — serves the web app (SPEC §6) from the assets built into the
 * binary: GET and HEAD of "/" and "/assets/<build>/…", with an ETag, a
 * cache lifetime by kind, gzip when the client takes it, and the security
 * headers that hold the app to its own origin (a Content-Security-Policy
 * without inline script). */
#ifndef SS_HTTP_WEB_H
#define SS_HTTP_WEB_H

#include "http/server.h"

/* Answers the request when its path is one of the app's (any method: a
 * method other than GET or HEAD is a 405) and returns 1; 0 when the path
 * is not the app's. */
int web_serve(http_request *req);

#endif

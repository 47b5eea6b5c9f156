#include "http/web.h"

#include "http/export_text.h"
#include "http/web_assets.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>

/* The app loads only its own files and talks only to its own origin; no
 * inline script or style, no frames, no plugins. uPlot styles its nodes
 * through the CSSOM (element.style), which style-src does not govern. */
#define WEB_SECURITY_HEADERS                                                                   \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "       \
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; "         \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n"                          \
    "X-Content-Type-Options: nosniff\r\n"                                                      \
    "X-Frame-Options: DENY\r\n"                                                                \
    "Referrer-Policy: no-referrer\r\n"                                                         \
    "Cross-Origin-Opener-Policy: same-origin\r\n"

/* index.html is asked again each time (it names the build of the assets);
 * an asset's URL changes with its content, so it is kept for a year. */
#define WEB_CACHE_PAGE "Cache-Control: no-cache\r\n"
#define WEB_CACHE_ASSET "Cache-Control: public, max-age=31536000, immutable\r\n"

/* The extra header lines of an answer: the fixed ones, the ETag and the
 * encoding's. */
#define WEB_HEADERS_MAX 1024u
/* An asset's tag as sent: the generated one (18 bytes) and a suffix. */
#define WEB_ETAG_MAX 64u

static const web_asset *asset_find(const char *path)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].path, path) == 0)
            return &web_assets[i];
    return NULL;
}

static int path_is_app(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
           strncmp(path, "/assets/", 8) == 0;
}

/* RFC 9110 §13.1.2: "*" or a list holding the tag (weak or strong: a
 * GET compares weakly). */
static int etag_matches(const char *if_none_match, const char *etag)
{
    if (!if_none_match)
        return 0;
    if (strcmp(if_none_match, "*") == 0)
        return 1;
    return strstr(if_none_match, etag) != NULL;
}

int web_serve(http_request *req)
{
    if (!path_is_app(req->path))
        return 0;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        static const char body[] = "{\"error\":{\"code\":\"method_not_allowed\","
                                   "\"message\":\"this method is not allowed here\"}}";
        http_respond(req, 405, "application/json", body, sizeof body - 1,
                     "Allow: GET, HEAD\r\n");
        return 1;
    }
    const web_asset *a = asset_find(strcmp(req->path, "/index.html") == 0 ? "/" : req->path);
    if (!a) {
        http_respond_error(req, 404, "not_found", "no such resource", NULL);
        return 1;
    }
    int gzip = a->gz && export_text_accepts_gzip(http_request_header(req, "accept-encoding"));
    /* Each representation has a tag of its own (RFC 9110 §8.8.3): the
     * gzip form's is the plain one's with "-gz" inside the quotes. */
    char etag[WEB_ETAG_MAX];
    size_t tag_len = strlen(a->etag);
    snprintf(etag, sizeof etag, "%.*s%s\"", (int)(tag_len - 1), a->etag, gzip ? "-gz" : "");
    char headers[WEB_HEADERS_MAX];
    snprintf(headers, sizeof headers, "%s%sETag: %s\r\nVary: Accept-Encoding\r\n%s",
             WEB_SECURITY_HEADERS, a->immutable ? WEB_CACHE_ASSET : WEB_CACHE_PAGE, etag,
             gzip ? "Content-Encoding: gzip\r\n" : "");
    if (etag_matches(http_request_header(req, "if-none-match"), etag)) {
        http_respond(req, 304, NULL, NULL, 0, headers);
        return 1;
    }
    const unsigned char *body = gzip ? a->gz : a->body;
    http_respond(req, 200, a->type, (const char *)body, gzip ? a->gz_len : a->len, headers);
    return 1;
}

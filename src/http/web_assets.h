/* web_assets.h — the web app's files, built into the binary.
 *
 * scripts/web-embed.mjs writes the table from web/ and the pinned uPlot at
 * build time: index.html at "/", everything else under
 * "/assets/<build>/", where <build> changes whenever any file does. */
#ifndef SS_HTTP_WEB_ASSETS_H
#define SS_HTTP_WEB_ASSETS_H

#include <stddef.h>

typedef struct web_asset {
    const char *path;           /* the URL path it is served at */
    const char *type;           /* Content-Type */
    const unsigned char *body;
    size_t len;
    const unsigned char *gz;    /* the gzip form; NULL when it would not be smaller */
    size_t gz_len;
    const char *etag;           /* quoted, of the plain body */
    int immutable;              /* its URL names its content: cache for good */
} web_asset;

extern const web_asset web_assets[];
extern const size_t web_assets_count;
extern const char web_assets_build[];

#endif

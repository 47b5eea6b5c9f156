/* dashboards.c — a dashboard's JSON checked field by field, its
 * lifecycle, and the access rule of what it shows.
 *
 * The stored spec is the checked body rebuilt from its known fields
 * (defaults filled in), never the body as sent: what a later read trusts
 * (the coverage rule, the app) is what was checked. */
#include "aaa/dashboards.h"

#include "aaa/access.h"
#include "aaa/secret.h"
#include "core/err.h"
#include "core/reading.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const widget_types[] = {"line", "gauge", "value", "table", "map"};
#define WIDGET_TYPES (sizeof widget_types / sizeof widget_types[0])

/* The body's fields; the answer's own (id …) are taken back in a PUT of
 * what a GET gave, and ignored. */
static const char *const body_fields[] = {"name",       "kind",       "device_filter",
                                          "widgets",    "id",         "org_id",
                                          "created_at", "updated_at", "created_by"};
static const char *const widget_fields[] = {"type",     "title", "device_id",
                                            "channels", "range", "options"};

/* A refusal: SS_INVAL (or err) with the reason in why. */
static int refuse(char *why, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(char *why, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, AAA_DASHBOARD_WHY_MAX, fmt, ap);
    va_end(ap);
    return err;
}

static int name_in(const char *name, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* The first member of obj not in names, or NULL. */
static const char *unknown_field(json_t *obj, const char *const *names, size_t n)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
        if (!name_in(k, names, n))
            return k;
    return NULL;
}

/* A string of 1..max bytes, not only white space, without NUL. */
static int text_ok(json_t *v, size_t max)
{
    if (!json_is_string(v) || json_string_length(v) > max)
        return 0;
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return 0;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 1;
    return 0;
}

/* ---- the device filter ------------------------------------------------ */

static int filter_value_ok(json_t *v)
{
    if (json_is_string(v))
        return json_string_length(v) <= SS_DASHBOARD_FILTER_VALUE_MAX &&
               strlen(json_string_value(v)) == json_string_length(v);
    return json_is_number(v) || json_is_boolean(v);
}

static int check_filter(json_t *filter, char *why)
{
    if (!json_is_object(filter) || json_object_size(filter) > SS_DASHBOARD_FILTER_KEYS_MAX)
        return refuse(why, SS_INVAL,
                      "device_filter: an object of at most %u attribute equalities",
                      SS_DASHBOARD_FILTER_KEYS_MAX);
    const char *k;
    json_t *v;
    json_object_foreach(filter, k, v) {
        if (!reading_channel_valid(k, strlen(k)) || !filter_value_ok(v))
            return refuse(why, SS_INVAL,
                          "device_filter: each name is 1-64 of A-Z a-z 0-9 _ . - and each "
                          "value a string (at most %u bytes), a number or a boolean",
                          SS_DASHBOARD_FILTER_VALUE_MAX);
    }
    return 0;
}

/* Scalars equal as the API reads them: numbers by value, whatever their
 * JSON type (1 and 1.0). */
static int scalar_equal(json_t *a, json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal(a, b);
}

/* The attribute equals the value, or is a list (tags) holding it: as a
 * device list's ?attr. filter matches. */
static int filter_entry_matches(json_t *attrs, const char *key, json_t *want)
{
    json_t *v = json_object_get(attrs, key);
    if (!json_is_array(v))
        return v && scalar_equal(v, want);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
        if (scalar_equal(e, want))
            return 1;
    return 0;
}

static int filter_matches(json_t *filter, const store_device *dev)
{
    if (!json_is_object(filter) || json_object_size(filter) == 0)
        return 1;
    json_error_t jerr;
    json_t *attrs = json_loads(dev->attributes[0] ? dev->attributes : "{}", 0, &jerr);
    int ok = json_is_object(attrs);
    const char *k;
    json_t *want;
    json_object_foreach(filter, k, want) {
        if (!ok)
            break;
        ok = filter_entry_matches(attrs, k, want);
    }
    json_decref(attrs);
    return ok;
}

/* ---- widgets ------------------------------------------------------------ */

typedef struct widget_check {
    store_conn *db;
    const char *org_id;
    int dynamic;
    size_t index;
    char *why;
} widget_check;

static int check_type(widget_check *w, json_t *in, json_t *out, int *map)
{
    json_t *type = json_object_get(in, "type");
    if (!json_is_string(type) || !name_in(json_string_value(type), widget_types, WIDGET_TYPES))
        return refuse(w->why, SS_INVAL,
                      "widgets[%zu].type: one of line, gauge, value, table, map", w->index);
    *map = strcmp(json_string_value(type), "map") == 0;
    json_object_set(out, "type", type);
    return 0;
}

static int check_title(widget_check *w, json_t *in, json_t *out)
{
    json_t *title = json_object_get(in, "title");
    if (title && !json_is_null(title) &&
        (!json_is_string(title) || json_string_length(title) > SS_DASHBOARD_TITLE_MAX ||
         strlen(json_string_value(title)) != json_string_length(title)))
        return refuse(w->why, SS_INVAL, "widgets[%zu].title: a string of at most %u bytes",
                      w->index, SS_DASHBOARD_TITLE_MAX);
    json_object_set_new(out, "title", json_string(json_is_string(title)
                                                      ? json_string_value(title) : ""));
    return 0;
}

/* A device of the dashboard's org; an unknown one and another org's answer
 * the same. */
static int check_device(widget_check *w, json_t *in, json_t *out, int map)
{
    json_t *id = json_object_get(in, "device_id");
    if (w->dynamic || map) {
        if (id && !json_is_null(id))
            return refuse(w->why, SS_INVAL,
                          "widgets[%zu].device_id: %s", w->index,
                          map ? "a map shows every device with a location; it names none"
                              : "a dynamic dashboard names no device (the viewer picks one)");
        return 0;
    }
    if (!json_is_string(id))
        return refuse(w->why, SS_INVAL,
                      "widgets[%zu].device_id: required on a static dashboard", w->index);
    store_device *dev = malloc(sizeof *dev);
    if (!dev)
        return SS_NOMEM;
    const char *text = json_string_value(id);
    int rc = secret_id_valid(text) ? store_device_get(w->db, text, dev) : SS_NOT_FOUND;
    if (rc == 0 && strcmp(dev->org_id, w->org_id) != 0)
        rc = SS_NOT_FOUND;
    free(dev);
    if (rc == SS_NOT_FOUND)
        return refuse(w->why, SS_NOT_FOUND,
                      "widgets[%zu].device_id: no such device in this organisation", w->index);
    if (rc)
        return rc;
    json_object_set(out, "device_id", id);
    return 0;
}

static int channels_ok(json_t *list)
{
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n < 1 || n > SS_DASHBOARD_CHANNELS_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(list, i);
        if (!json_is_string(c) ||
            !reading_channel_valid(json_string_value(c), json_string_length(c)))
            return 0;
    }
    return 1;
}

static int check_channels(widget_check *w, json_t *in, json_t *out, int map)
{
    json_t *list = json_object_get(in, "channels");
    if (map) {
        if (list && !json_is_null(list))
            return refuse(w->why, SS_INVAL,
                          "widgets[%zu].channels: a map shows locations, no channels",
                          w->index);
        return 0;
    }
    if (!channels_ok(list))
        return refuse(w->why, SS_INVAL,
                      "widgets[%zu].channels: 1 to %u channel names, each 1-64 of "
                      "A-Z a-z 0-9 _ . -",
                      w->index, SS_DASHBOARD_CHANNELS_MAX);
    json_object_set(out, "channels", list);
    return 0;
}

static int check_range(widget_check *w, json_t *in, json_t *out)
{
    json_t *range = json_object_get(in, "range");
    json_int_t ms = SS_DASHBOARD_RANGE_DEFAULT_MS;
    if (range && !json_is_null(range)) {
        ms = json_is_integer(range) ? json_integer_value(range) : 0;
        if (ms < SS_DASHBOARD_RANGE_MIN_MS || ms > SS_DASHBOARD_RANGE_MAX_MS)
            return refuse(w->why, SS_INVAL,
                          "widgets[%zu].range: whole milliseconds from %lld to %lld",
                          w->index, (long long)SS_DASHBOARD_RANGE_MIN_MS,
                          (long long)SS_DASHBOARD_RANGE_MAX_MS);
    }
    json_object_set_new(out, "range", json_integer(ms));
    return 0;
}

static int check_options(widget_check *w, json_t *in, json_t *out)
{
    json_t *opts = json_object_get(in, "options");
    if (!opts || json_is_null(opts)) {
        json_object_set_new(out, "options", json_object());
        return 0;
    }
    size_t n = json_is_object(opts) ? json_dumpb(opts, NULL, 0, JSON_COMPACT) : 0;
    if (n == 0 || n > SS_DASHBOARD_OPTIONS_MAX)
        return refuse(w->why, SS_INVAL,
                      "widgets[%zu].options: a JSON object of at most %u bytes", w->index,
                      SS_DASHBOARD_OPTIONS_MAX);
    json_object_set(out, "options", opts);
    return 0;
}

static int check_widget(widget_check *w, json_t *in, json_t *out)
{
    if (!json_is_object(in))
        return refuse(w->why, SS_INVAL, "widgets[%zu]: an object", w->index);
    const char *extra =
        unknown_field(in, widget_fields, sizeof widget_fields / sizeof widget_fields[0]);
    if (extra)
        return refuse(w->why, SS_INVAL, "widgets[%zu]: unknown field '%.64s'", w->index, extra);
    int map = 0;
    int rc = check_type(w, in, out, &map);
    if (!rc)
        rc = check_title(w, in, out);
    if (!rc)
        rc = check_device(w, in, out, map);
    if (!rc)
        rc = check_channels(w, in, out, map);
    if (!rc)
        rc = check_range(w, in, out);
    if (!rc)
        rc = check_options(w, in, out);
    return rc;
}

static int check_widgets(widget_check *w, json_t *list, json_t *out)
{
    if (list && !json_is_array(list))
        return refuse(w->why, SS_INVAL, "widgets: a list of widgets");
    if (json_array_size(list) > SS_DASHBOARD_WIDGETS_MAX)
        return refuse(w->why, SS_INVAL, "widgets: at most %u widgets",
                      SS_DASHBOARD_WIDGETS_MAX);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *one = json_object();
        if (!one)
            return SS_NOMEM;
        w->index = i;
        int rc = check_widget(w, json_array_get(list, i), one);
        if (rc) {
            json_decref(one);
            return rc;
        }
        json_array_append_new(out, one);
    }
    return 0;
}

/* ---- the body ----------------------------------------------------------- */

static int check_head(json_t *body, store_dashboard *out, char *why)
{
    const char *extra =
        unknown_field(body, body_fields, sizeof body_fields / sizeof body_fields[0]);
    if (extra)
        return refuse(why, SS_INVAL, "unknown field '%.64s'", extra);
    json_t *name = json_object_get(body, "name");
    if (!text_ok(name, SS_NAME_MAX))
        return refuse(why, SS_INVAL, "name: required, 1-%u characters", SS_NAME_MAX);
    json_t *kind = json_object_get(body, "kind");
    const char *k = json_string_value(kind);
    if (!k || (strcmp(k, "static") != 0 && strcmp(k, "dynamic") != 0))
        return refuse(why, SS_INVAL, "kind: required, static or dynamic");
    snprintf(out->name, sizeof out->name, "%s", json_string_value(name));
    out->kind = strcmp(k, "dynamic") == 0 ? STORE_DASHBOARD_DYNAMIC : STORE_DASHBOARD_STATIC;
    return 0;
}

/* The spec's text into out->spec; refused when it does not fit (escapes
 * can make the text longer than every limit's sum suggests). */
static int spec_text(json_t *spec, store_dashboard *out, char *why)
{
    size_t n = json_dumpb(spec, out->spec, SS_DASHBOARD_SPEC_MAX, JSON_COMPACT);
    if (n == 0 || n > SS_DASHBOARD_SPEC_MAX)
        return refuse(why, SS_INVAL, "the dashboard is over %u bytes as compact JSON",
                      SS_DASHBOARD_SPEC_MAX);
    out->spec[n] = '\0';
    return 0;
}

int aaa_dashboard_parse(store_conn *db, const char *org_id, json_t *body, store_dashboard *out,
                        char *why)
{
    int rc = check_head(body, out, why);
    if (rc)
        return rc;
    json_t *filter = json_object_get(body, "device_filter");
    if (filter && json_is_null(filter))
        filter = NULL;
    if (filter && out->kind == STORE_DASHBOARD_STATIC)
        return refuse(why, SS_INVAL,
                      "device_filter: only a dynamic dashboard has one (a static one names "
                      "its devices in its widgets)");
    if (filter && (rc = check_filter(filter, why)) != 0)
        return rc;
    json_t *spec = json_object();
    json_t *widgets = json_array();
    if (!spec || !widgets) {
        json_decref(spec);
        json_decref(widgets);
        return SS_NOMEM;
    }
    if (filter)
        json_object_set(spec, "device_filter", filter);
    json_object_set_new(spec, "widgets", widgets);
    widget_check w = {.db = db,
                      .org_id = org_id,
                      .dynamic = out->kind == STORE_DASHBOARD_DYNAMIC,
                      .why = why};
    rc = check_widgets(&w, json_object_get(body, "widgets"), widgets);
    if (!rc)
        rc = spec_text(spec, out, why);
    json_decref(spec);
    return rc;
}

/* ---- answers and lifecycle --------------------------------------------- */

json_t *aaa_dashboard_spec(const store_dashboard *d)
{
    json_error_t jerr;
    json_t *spec = json_loads(d->spec, 0, &jerr);
    if (!json_is_object(spec)) {
        json_decref(spec);
        return NULL;
    }
    return spec;
}

json_t *aaa_dashboard_json(const store_dashboard *d)
{
    json_t *spec = aaa_dashboard_spec(d);
    json_t *widgets = json_object_get(spec, "widgets");
    json_t *filter = json_object_get(spec, "device_filter");
    int dynamic = d->kind == STORE_DASHBOARD_DYNAMIC;
    json_t *list = json_is_array(widgets) ? json_incref(widgets) : json_array();
    json_t *out = json_pack(
        "{s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:s}", "id", d->id, "org_id", d->org_id, "name", d->name,
        "kind", dynamic ? "dynamic" : "static", "widgets", list, "created_at",
        (json_int_t)d->created_at, "updated_at", (json_int_t)d->updated_at, "created_by",
        d->created_by);
    if (out && dynamic)
        json_object_set_new(out, "device_filter",
                            json_is_object(filter) ? json_incref(filter) : json_object());
    json_decref(spec);
    return out;
}

static void audit_dashboard(aaa_ctx *cx, const store_dashboard *d, const char *action,
                            int with_layout)
{
    char target[64];
    snprintf(target, sizeof target, "dashboard:%s", d->id);
    json_t *detail = json_pack("{s:s}", "name", d->name);
    if (detail && with_layout) {
        json_t *spec = aaa_dashboard_spec(d);
        json_object_set_new(detail, "kind",
                            json_string(d->kind == STORE_DASHBOARD_DYNAMIC ? "dynamic" : "static"));
        json_object_set_new(detail, "widgets",
                            json_integer((json_int_t)json_array_size(
                                json_object_get(spec, "widgets"))));
        json_decref(spec);
    }
    aaa_audit(cx, d->org_id, action, target, detail);
}

int aaa_dashboard_create(aaa_ctx *cx, store_dashboard *d)
{
    secret_new_id(d->id);
    d->created_at = cx->now_ms;
    d->updated_at = cx->now_ms;
    aaa_principal_actor(cx->who, d->created_by, sizeof d->created_by);
    int rc = store_dashboard_create(cx->db, d);
    if (rc == 0)
        audit_dashboard(cx, d, "dashboard.create", 1);
    return rc;
}

int aaa_dashboard_update(aaa_ctx *cx, store_dashboard *d)
{
    d->updated_at = cx->now_ms > d->updated_at ? cx->now_ms : d->updated_at;
    int rc = store_dashboard_update(cx->db, d);
    if (rc)
        return rc;
    aaa_revoke_shown(cx, d->org_id);  /* open streams of what it no longer shows end */
    audit_dashboard(cx, d, "dashboard.update", 1);
    return 0;
}

int aaa_dashboard_delete(aaa_ctx *cx, const store_dashboard *d)
{
    int rc = store_dashboard_delete(cx->db, d->id);
    if (rc)
        return rc;
    aaa_revoke_shown(cx, d->org_id);  /* open streams of what it showed end */
    audit_dashboard(cx, d, "dashboard.delete", 0);
    return 0;
}

int aaa_dashboard_access(store_conn *db, const aaa_principal *p, const char *id, store_role min,
                         store_dashboard *out)
{
    int rc = secret_id_valid(id) ? store_dashboard_get(db, id, out) : SS_NOT_FOUND;
    if (rc)
        return rc;
    return aaa_require_role(db, p, out->org_id, min, NULL);
}

/* ---- what a dashboard shows --------------------------------------------- */

/* The widget applies to the device: a static dashboard's names it; every
 * widget of a dynamic one shows the device picked. */
static int widget_on_device(const store_dashboard *d, json_t *widget, const store_device *dev)
{
    if (d->kind == STORE_DASHBOARD_DYNAMIC)
        return 1;
    const char *id = json_string_value(json_object_get(widget, "device_id"));
    return id && strcmp(id, dev->id) == 0;
}

int aaa_dashboard_shows_device(const store_dashboard *d, json_t *spec, const store_device *dev)
{
    if (strcmp(d->org_id, dev->org_id) != 0)
        return 0;
    if (d->kind == STORE_DASHBOARD_DYNAMIC)
        return filter_matches(json_object_get(spec, "device_filter"), dev);
    json_t *widgets = json_object_get(spec, "widgets");
    for (size_t i = 0; i < json_array_size(widgets); i++)
        if (widget_on_device(d, json_array_get(widgets, i), dev))
            return 1;
    return 0;
}

/* One pass of the coverage rule over an org's dashboards: which of the
 * asked channels some dashboard shows so far. */
typedef struct cover_walk {
    const store_device *dev;
    const char *const *channels;
    size_t n;
    unsigned char *shown;  /* n flags */
    size_t left;           /* channels not shown yet */
    int any;               /* n 0: some channel is shown */
} cover_walk;

static void cover_widget(cover_walk *cw, json_t *widget)
{
    json_t *names = json_object_get(widget, "channels");
    for (size_t j = 0; j < json_array_size(names); j++) {
        const char *name = json_string_value(json_array_get(names, j));
        if (!name)
            continue;
        if (cw->n == 0) {
            cw->any = 1;
            return;
        }
        for (size_t i = 0; i < cw->n; i++) {
            if (!cw->shown[i] && strcmp(cw->channels[i], name) == 0) {
                cw->shown[i] = 1;
                cw->left--;
            }
        }
    }
}

/* Whether the layout's text may matter to the walk, told without parsing
 * it (a layout is up to 192 KiB, an org's up to 256 of them, read for
 * every request of a dashboard user): a static one names the device, a
 * dynamic one names a channel not shown yet. Device ids and channel names
 * are written in JSON as they are (no character of theirs is escaped). */
static int cover_may_matter(const cover_walk *cw, const store_dashboard *d)
{
    if (d->kind == STORE_DASHBOARD_STATIC)
        return strstr(d->spec, cw->dev->id) != NULL;
    if (cw->n == 0)
        return 1;
    for (size_t i = 0; i < cw->n; i++) {
        char quoted[SS_CHANNEL_MAX + 3];
        if (cw->shown[i])
            continue;
        snprintf(quoted, sizeof quoted, "\"%s\"", cw->channels[i]);
        if (strstr(d->spec, quoted))
            return 1;
    }
    return 0;
}

/* Stops the walk once the answer is settled. */
static int cover_dashboard(void *ctx, const store_dashboard *d)
{
    cover_walk *cw = ctx;
    if (!cover_may_matter(cw, d))
        return 0;
    json_t *spec = aaa_dashboard_spec(d);
    if (spec && aaa_dashboard_shows_device(d, spec, cw->dev)) {
        json_t *widgets = json_object_get(spec, "widgets");
        for (size_t i = 0; i < json_array_size(widgets); i++) {
            json_t *w = json_array_get(widgets, i);
            if (widget_on_device(d, w, cw->dev))
                cover_widget(cw, w);
        }
    }
    json_decref(spec);
    return cw->n == 0 ? cw->any : cw->left == 0;
}

/* The org's dashboards are read whole each time (at most
 * SS_DASHBOARDS_PER_ORG_MAX), so a change of a dashboard or of a device's
 * attributes holds from the next request on. */
int aaa_dashboard_covers(store_conn *db, const store_device *d, const char *const *channels,
                         size_t n, int *covered)
{
    *covered = 0;
    cover_walk cw = {.dev = d, .channels = channels, .n = n, .left = n};
    if (n > 0 && (cw.shown = calloc(n, 1)) == NULL)
        return SS_NOMEM;
    int rc = store_dashboard_list(db, d->org_id, NULL, NULL, cover_dashboard, &cw);
    free(cw.shown);
    if (rc == 0)
        *covered = n == 0 ? cw.any : cw.left == 0;
    return rc;
}

int aaa_dashboard_shown(store_conn *db, const store_device *d, const char *const *channels,
                        size_t n, unsigned char *shown)
{
    memset(shown, 0, n);
    if (n == 0)
        return 0;
    cover_walk cw = {.dev = d, .channels = channels, .n = n, .left = n, .shown = shown};
    return store_dashboard_list(db, d->org_id, NULL, NULL, cover_dashboard, &cw);
}

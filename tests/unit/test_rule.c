/* Unit tests of src/domain/rule.h: every rule of eo_rule_parse with a passing and a failing row
 * (return code, error code and field checked), the defaults it fills in, the size limit, the
 * canonical JSON (exact texts, durations in their largest unit) and the round trip
 * parse(to_json(r)) == r field by field over every accepted row, eo_rule_equal against a change
 * of each field, eo_duration_parse, paths over events decoded by eo_event_normalize, the alert
 * state machine as sequences of (value, time) -> transition, and the summary eventId (known
 * answers computed independently with Python's uuid.uuid5). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "domain/event.h"
#include "domain/rule.h"

#define MS INT64_C(1000)
#define S INT64_C(1000000)
#define MIN (60 * S)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* Turns ' into " so that rows stay readable (no row needs a literal '). */
static char *dq(const char *text)
{
    char *s = strdup(text);
    assert_non_null(s);
    for (char *p = s; *p; p++)
        if (*p == '\'')
            *p = '"';
    return s;
}

static int parse_text(const char *text, const eo_rule_limits_t *lim, eo_rule_t *r,
                      eo_event_error_t *err)
{
    char *s = dq(text);
    int rc = eo_rule_parse(s, strlen(s), lim, r, err);
    free(s);
    return rc;
}

static eo_rule_limits_t limits(void)
{
    eo_rule_limits_t lim;
    eo_rule_limits_default(&lim);
    return lim;
}

/* ---- the rule table ---- */

#define X16 "abcdefghijklmnop"
#define X128 X16 X16 X16 X16 X16 X16 X16 X16
#define Z64 "Abcdefgh/Abcdefgh/Abcdefgh/Abcdefgh/Abcdefgh/Abcdefgh/Abcdefgh/A"

#define BASE "'name':'signup burst','eventType':'signup'"
#define TW "{'type':'tumbling','size':'5m'}"
#define CNT "{'fn':'count'}"
/* a rule of base, window and aggregate, and more members */
#define R(more) "{" BASE ",'window':" TW ",'aggregate':" CNT more "}"
#define WA(win, agg) "{" BASE ",'window':" win ",'aggregate':" agg "}"
#define W(win) WA(win, CNT)
#define A(agg) WA(TW, agg)
#define C(cond) R(",'condition':" cond)
#define WAC(win, agg, cond) "{" BASE ",'window':" win ",'aggregate':" agg ",'condition':" cond "}"

typedef struct {
    const char *json;
    int rc;
    const char *code;  /* NULL when accepted */
    const char *field; /* err->field when refused */
} row_t;

#define OK(json)                                                                                   \
    {                                                                                              \
        json, 0, NULL, NULL                                                                        \
    }
#define BAD(json, rc, code, field)                                                                 \
    {                                                                                              \
        json, rc, code, field                                                                      \
    }
#define INV(json, code, field) BAD(json, EO_EINVAL, code, field)

static const row_t rows[] = {
    /* the body: a JSON object */
    OK(R("")),
    INV("[1]", "invalid_type", ""),
    INV("'rule'", "invalid_type", ""),
    BAD("{", EO_EPARSE, "malformed_json", ""),
    BAD("{'name':'a','name':'b'}", EO_EPARSE, "malformed_json", ""),
    BAD("{} {}", EO_EPARSE, "malformed_json", ""),
    BAD("", EO_EPARSE, "malformed_json", ""),

    /* unknown members, anywhere, named by their dotted path */
    INV(R(",'sise':'5m'"), "unknown_field", "sise"),
    INV(W("{'type':'tumbling','sise':'5m'}"), "unknown_field", "window.sise"),
    INV(A("{'fn':'count','prop':'x'}"), "unknown_field", "aggregate.prop"),
    INV(C("{'op':'>=','value':1,'clear':2}"), "unknown_field", "condition.clear"),
    INV(R(",'a\\u0001\\u00e9':1"), "unknown_field", "a???"), /* made printable */
    INV(R(",'" X16 X16 X16 X16 "':1"), "unknown_field", X16 X16 "abcdefghijklmno"), /* cut */

    /* name: 1..128 bytes of text */
    OK("{'name':'" X128 "','eventType':'e','window':" TW ",'aggregate':" CNT "}"),
    INV("{'name':'" X128 "x','eventType':'e','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "name"),
    OK("{'name':'Stra\\u00dfe \\u2603','eventType':'e','window':" TW ",'aggregate':" CNT "}"),
    INV("{'eventType':'e','window':" TW ",'aggregate':" CNT "}", "missing_field", "name"),
    INV("{'name':'','eventType':'e','window':" TW ",'aggregate':" CNT "}", "invalid_rule", "name"),
    INV("{'name':'  ','eventType':'e','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "name"),
    INV("{'name':'a\\nb','eventType':'e','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "name"),
    INV("{'name':7,'eventType':'e','window':" TW ",'aggregate':" CNT "}", "invalid_type", "name"),

    /* eventType: the collector's charset, 1..128 bytes, or "*" */
    OK("{'name':'n','eventType':'*','window':" TW ",'aggregate':" CNT "}"),
    OK("{'name':'n','eventType':'" X128 "','window':" TW ",'aggregate':" CNT "}"),
    INV("{'name':'n','eventType':'" X128 "x','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "eventType"),
    OK("{'name':'n','eventType':'Order Completed','window':" TW ",'aggregate':" CNT "}"),
    INV("{'name':'n','eventType':'','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "eventType"),
    INV("{'name':'n','eventType':' ','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "eventType"),
    INV("{'name':'n','eventType':'a\\tb','window':" TW ",'aggregate':" CNT "}", "invalid_rule",
        "eventType"),
    INV("{'name':'n','window':" TW ",'aggregate':" CNT "}", "missing_field", "eventType"),
    INV("{'name':'n','eventType':['e'],'window':" TW ",'aggregate':" CNT "}", "invalid_type",
        "eventType"),

    /* window and window.type */
    INV("{" BASE ",'aggregate':" CNT "}", "missing_field", "window"),
    INV(W("'5m'"), "invalid_type", "window"),
    INV(W("{'size':'5m'}"), "missing_field", "window.type"),
    INV(W("{'type':'rolling','size':'5m'}"), "invalid_rule", "window.type"),
    INV(W("{'type':1,'size':'5m'}"), "invalid_type", "window.type"),

    /* window.size: a duration string within [1s, 31d] */
    OK(W("{'type':'tumbling','size':'1s'}")),
    INV(W("{'type':'tumbling','size':'999ms'}"), "invalid_rule", "window.size"),
    OK(W("{'type':'tumbling','size':'31d'}")),
    OK(W("{'type':'tumbling','size':'744h'}")),
    INV(W("{'type':'tumbling','size':'32d'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling'}"), "missing_field", "window.size"),
    INV(W("{'type':'tumbling','size':300}"), "invalid_type", "window.size"),
    INV(W("{'type':'tumbling','size':'0s'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'05m'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'5 m'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'+5m'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'-5m'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'5M'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'5min'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'tumbling','size':'1.5m'}"), "invalid_rule", "window.size"),

    /* tumbling: no slide, no gap */
    INV(W("{'type':'tumbling','size':'5m','slide':'5m'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'tumbling','size':'5m','gap':'5m'}"), "invalid_rule", "window.gap"),

    /* hopping: 0 < slide < size, at most max_panes panes */
    OK(W("{'type':'hopping','size':'5m','slide':'1m'}")),
    OK(W("{'type':'hopping','size':'1s','slide':'1ms'}")), /* 1000 panes */
    INV(W("{'type':'hopping','size':'5m'}"), "missing_field", "window.slide"),
    INV(W("{'type':'hopping','size':'5m','slide':'5m'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'hopping','size':'5m','slide':'6m'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'hopping','size':'5m','slide':'0s'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'hopping','size':'5m','slide':60}"), "invalid_type", "window.slide"),
    OK(W("{'type':'hopping','size':'1d','slide':'1m'}")), /* 1440 panes: the limit */
    INV(W("{'type':'hopping','size':'1441m','slide':'1m'}"), "invalid_rule", "window.slide"),
    OK(W("{'type':'hopping','size':'1d','slide':'7m'}")), /* gcd 1m: 1440 panes */
    INV(W("{'type':'hopping','size':'1d','slide':'7s'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'hopping','size':'5m','slide':'1m','gap':'1m'}"), "invalid_rule", "window.gap"),

    /* sliding: size only, count only; session: no unique_users */
    OK(W("{'type':'sliding','size':'5m'}")),
    INV(WA("{'type':'sliding','size':'5m'}", "{'fn':'unique_users'}"), "invalid_rule",
        "aggregate.fn"),
    OK(WA("{'type':'session','gap':'5m'}", "{'fn':'count'}")),
    INV(WA("{'type':'session','gap':'5m'}", "{'fn':'unique_users'}"), "invalid_rule",
        "aggregate.fn"),
    INV(W("{'type':'sliding','size':'5m','slide':'1m'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'sliding'}"), "missing_field", "window.size"),
    INV(WA("{'type':'sliding','size':'5m'}", "{'fn':'sum','property':'properties.amount'}"),
        "invalid_rule", "aggregate.fn"),
    INV(WA("{'type':'sliding','size':'5m'}", "{'fn':'rate_per_minute'}"), "invalid_rule",
        "aggregate.fn"),

    /* session: gap only, within [1s, 31d] */
    OK(W("{'type':'session','gap':'30m'}")),
    INV(W("{'type':'session'}"), "missing_field", "window.gap"),
    INV(W("{'type':'session','gap':'30m','size':'1h'}"), "invalid_rule", "window.size"),
    INV(W("{'type':'session','gap':'30m','slide':'1h'}"), "invalid_rule", "window.slide"),
    INV(W("{'type':'session','gap':'500ms'}"), "invalid_rule", "window.gap"),
    INV(W("{'type':'session','gap':'32d'}"), "invalid_rule", "window.gap"),
    INV(W("{'type':'session','gap':1800}"), "invalid_type", "window.gap"),

    /* zone: tumbling 1d or 1w only, an IANA-shaped name */
    OK(W("{'type':'tumbling','size':'1d','zone':'Europe/Berlin'}")),
    OK(W("{'type':'tumbling','size':'1w','zone':'America/Argentina/Buenos_Aires'}")),
    OK(W("{'type':'tumbling','size':'24h','zone':'Etc/GMT+5'}")),
    OK(W("{'type':'tumbling','size':'1d','zone':'" Z64 "'}")),
    INV(W("{'type':'tumbling','size':'1d','zone':'" Z64 "x'}"), "invalid_rule", "window.zone"),
    INV(W("{'type':'tumbling','size':'5m','zone':'Europe/Berlin'}"), "invalid_rule", "window.zone"),
    INV(W("{'type':'tumbling','size':'2d','zone':'Europe/Berlin'}"), "invalid_rule", "window.zone"),
    INV(W("{'type':'hopping','size':'1d','slide':'1h','zone':'UTC'}"), "invalid_rule",
        "window.zone"),
    INV(W("{'type':'session','gap':'1d','zone':'UTC'}"), "invalid_rule", "window.zone"),
    INV(W("{'type':'tumbling','size':'1d','zone':'/etc/localtime'}"), "invalid_rule",
        "window.zone"),
    INV(W("{'type':'tumbling','size':'1d','zone':'../../etc/passwd'}"), "invalid_rule",
        "window.zone"),
    INV(W("{'type':'tumbling','size':'1d','zone':'Europe/Berlin '}"), "invalid_rule",
        "window.zone"),
    INV(W("{'type':'tumbling','size':'1d','zone':''}"), "invalid_rule", "window.zone"),
    INV(W("{'type':'tumbling','size':'1d','zone':1}"), "invalid_type", "window.zone"),

    /* groupBy: 0..2 distinct paths */
    OK(R(",'groupBy':[]")),
    OK(R(",'groupBy':['properties.plan','context.country']")),
    OK(R(",'groupBy':['type','userId']")),
    OK(R(",'groupBy':['anonymousId']")),
    OK(R(",'groupBy':['properties.a.b.c.d']")),
    OK(R(",'groupBy':['properties.$a-b_C9']")),
    INV(R(",'groupBy':'properties.plan'"), "invalid_type", "groupBy"),
    INV(R(",'groupBy':['type','userId','anonymousId']"), "invalid_rule", "groupBy"),
    INV(R(",'groupBy':['properties.plan','properties.plan']"), "invalid_rule", "groupBy[1]"),
    INV(R(",'groupBy':['type',1]"), "invalid_type", "groupBy[1]"),
    INV(R(",'groupBy':['properties']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['properties.']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['properties..a']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['properties.a.']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['props.plan']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['userid']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['properties.a.b.c.d.e']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['properties.a b']"), "invalid_rule", "groupBy[0]"),
    INV(R(",'groupBy':['type','properties.a\\u00e9']"), "invalid_rule", "groupBy[1]"),
    OK(R(",'groupBy':['properties." X16 X16 X16 X16 X16 X16 X16 "abcde']")), /* 128 bytes */
    INV(R(",'groupBy':['properties." X16 X16 X16 X16 X16 X16 X16 "abcdef']"), "invalid_rule",
        "groupBy[0]"),

    /* aggregate and aggregate.fn */
    INV("{" BASE ",'window':" TW "}", "missing_field", "aggregate"),
    INV(A("['count']"), "invalid_type", "aggregate"),
    INV(A("{'property':'properties.a'}"), "missing_field", "aggregate.fn"),
    INV(A("{'fn':'median'}"), "invalid_rule", "aggregate.fn"),
    INV(A("{'fn':'COUNT'}"), "invalid_rule", "aggregate.fn"),
    OK(A("{'fn':'unique_users'}")),
    OK(A("{'fn':'rate_per_minute'}")),
    OK(WA("{'type':'session','gap':'10m'}", "{'fn':'rate_per_minute'}")),

    /* aggregate.property: for sum/mean/min/max (and rolling/ewma of a sum) only */
    OK(A("{'fn':'sum','property':'properties.amount'}")),
    OK(A("{'fn':'mean','property':'properties.order.total'}")),
    OK(A("{'fn':'min','property':'context.latency_ms'}")),
    OK(A("{'fn':'max','property':'properties.amount'}")),
    INV(A("{'fn':'sum'}"), "missing_field", "aggregate.property"),
    INV(A("{'fn':'max'}"), "missing_field", "aggregate.property"),
    INV(A("{'fn':'count','property':'properties.amount'}"), "invalid_rule", "aggregate.property"),
    INV(A("{'fn':'sum','property':'type'}"), "invalid_rule", "aggregate.property"),
    INV(A("{'fn':'sum','property':'userId'}"), "invalid_rule", "aggregate.property"),
    INV(A("{'fn':'sum','property':5}"), "invalid_type", "aggregate.property"),
    INV(A("{'fn':'sum','property':'amount'}"), "invalid_rule", "aggregate.property"),

    /* rolling_mean / rolling_sum: buckets required, 1..max_buckets; of count|sum */
    OK(A("{'fn':'rolling_mean','buckets':5}")),
    OK(A("{'fn':'rolling_sum','buckets':1000}")),
    OK(A("{'fn':'rolling_sum','of':'sum','property':'properties.amount','buckets':3}")),
    OK(A("{'fn':'rolling_mean','of':'count','buckets':1}")),
    INV(A("{'fn':'rolling_mean'}"), "missing_field", "aggregate.buckets"),
    INV(A("{'fn':'rolling_mean','buckets':0}"), "invalid_rule", "aggregate.buckets"),
    INV(A("{'fn':'rolling_mean','buckets':1001}"), "invalid_rule", "aggregate.buckets"),
    INV(A("{'fn':'rolling_mean','buckets':'5'}"), "invalid_type", "aggregate.buckets"),
    INV(A("{'fn':'rolling_mean','buckets':5.0}"), "invalid_type", "aggregate.buckets"),
    INV(A("{'fn':'count','buckets':5}"), "invalid_rule", "aggregate.buckets"),
    INV(A("{'fn':'ewma','span':5,'buckets':5}"), "invalid_rule", "aggregate.buckets"),
    INV(A("{'fn':'rolling_sum','of':'sum','buckets':3}"), "missing_field", "aggregate.property"),
    INV(A("{'fn':'rolling_sum','buckets':3,'property':'properties.amount'}"), "invalid_rule",
        "aggregate.property"),
    INV(A("{'fn':'rolling_sum','of':'mean','buckets':3}"), "invalid_rule", "aggregate.of"),
    INV(A("{'fn':'rolling_sum','of':1,'buckets':3}"), "invalid_type", "aggregate.of"),
    INV(A("{'fn':'sum','of':'sum','property':'properties.amount'}"), "invalid_rule",
        "aggregate.of"),

    /* ewma: span required, 1..max_buckets */
    OK(A("{'fn':'ewma','span':10}")),
    OK(A("{'fn':'ewma','of':'sum','property':'properties.amount','span':1}")),
    INV(A("{'fn':'ewma'}"), "missing_field", "aggregate.span"),
    INV(A("{'fn':'ewma','span':0}"), "invalid_rule", "aggregate.span"),
    INV(A("{'fn':'ewma','span':1001}"), "invalid_rule", "aggregate.span"),
    INV(A("{'fn':'rolling_sum','buckets':3,'span':3}"), "invalid_rule", "aggregate.span"),

    /* rolling_* / ewma need a tumbling or hopping window */
    OK(WA("{'type':'hopping','size':'5m','slide':'1m'}", "{'fn':'ewma','span':4}")),
    INV(WA("{'type':'session','gap':'5m'}", "{'fn':'ewma','span':4}"), "invalid_rule",
        "aggregate.fn"),
    INV(WA("{'type':'session','gap':'5m'}", "{'fn':'rolling_mean','buckets':4}"), "invalid_rule",
        "aggregate.fn"),
    INV(WA("{'type':'sliding','size':'5m'}", "{'fn':'rolling_sum','buckets':4}"), "invalid_rule",
        "aggregate.fn"),

    /* emit */
    OK(R(",'emit':'changes'")),
    OK(R(",'emit':'final'")),
    INV(R(",'emit':'always'"), "invalid_rule", "emit"),
    INV(R(",'emit':true"), "invalid_type", "emit"),
    INV(R(",'emit':null"), "invalid_type", "emit"),

    /* grace: a duration, 0 allowed, at most the longest horizon */
    OK(R(",'grace':'0s'")),
    OK(R(",'grace':'90s'")),
    OK(R(",'grace':'7d'")),
    INV(R(",'grace':'8d'"), "invalid_rule", "grace"),
    INV(R(",'grace':60"), "invalid_type", "grace"),
    INV(R(",'grace':'0'"), "invalid_rule", "grace"),
    INV(R(",'grace':'00s'"), "invalid_rule", "grace"),

    /* horizon: grace <= horizon <= max_horizon */
    OK(R(",'horizon':'1h'")),
    OK(R(",'grace':'0s','horizon':'0s'")),
    OK(R(",'grace':'10m','horizon':'10m'")),
    INV(R(",'horizon':'30s'"), "invalid_rule", "horizon"), /* default grace is 60 s */
    INV(R(",'grace':'10m','horizon':'9m'"), "invalid_rule", "horizon"),
    INV(R(",'horizon':'8d'"), "invalid_rule", "horizon"),
    INV(R(",'horizon':3600"), "invalid_type", "horizon"),

    /* maxGroups: 1..max_groups */
    OK(R(",'maxGroups':1")),
    OK(R(",'maxGroups':10000")),
    INV(R(",'maxGroups':0"), "invalid_rule", "maxGroups"),
    INV(R(",'maxGroups':10001"), "invalid_rule", "maxGroups"),
    INV(R(",'maxGroups':'5'"), "invalid_type", "maxGroups"),
    INV(R(",'maxGroups':1.5"), "invalid_type", "maxGroups"),

    /* condition: op and value required */
    OK(C("{'op':'>=','value':100}")),
    OK(C("{'op':'==','value':0}")),
    OK(C("{'op':'<','value':-2.5e-3}")),
    OK(C("{'op':'>','value':1.5e300}")),
    INV(C("[]"), "invalid_type", "condition"),
    INV(C("{'value':100}"), "missing_field", "condition.op"),
    INV(C("{'op':'=>','value':100}"), "invalid_rule", "condition.op"),
    INV(C("{'op':'>='}"), "missing_field", "condition.value"),
    INV(C("{'op':'>=','value':'100'}"), "invalid_type", "condition.value"),
    INV(C("{'op':'>=','value':null}"), "invalid_type", "condition.value"),

    /* condition.for and keepFiringFor: durations, 0 allowed */
    OK(C("{'op':'>=','value':1,'for':'5m','keepFiringFor':'10m'}")),
    OK(C("{'op':'>=','value':1,'for':'0s','keepFiringFor':'0ms'}")),
    INV(C("{'op':'>=','value':1,'for':300}"), "invalid_type", "condition.for"),
    INV(C("{'op':'>=','value':1,'for':'-1m'}"), "invalid_rule", "condition.for"),
    INV(C("{'op':'>=','value':1,'keepFiringFor':'10'}"), "invalid_rule", "condition.keepFiringFor"),

    /* clearBelow: on the side where the condition does not hold; not with == */
    OK(C("{'op':'>=','value':100,'clearBelow':80}")),
    OK(C("{'op':'>=','value':100,'clearBelow':100}")),
    OK(C("{'op':'>','value':100,'clearBelow':99.5}")),
    INV(C("{'op':'>=','value':100,'clearBelow':120}"), "invalid_rule", "condition.clearBelow"),
    INV(C("{'op':'>','value':100,'clearBelow':100.5}"), "invalid_rule", "condition.clearBelow"),
    OK(C("{'op':'<=','value':10,'clearBelow':20}")),
    OK(C("{'op':'<','value':10,'clearBelow':10}")),
    INV(C("{'op':'<','value':100,'clearBelow':80}"), "invalid_rule", "condition.clearBelow"),
    INV(C("{'op':'<=','value':100,'clearBelow':99}"), "invalid_rule", "condition.clearBelow"),
    INV(C("{'op':'==','value':100,'clearBelow':80}"), "invalid_rule", "condition.clearBelow"),
    INV(C("{'op':'>=','value':100,'clearBelow':'80'}"), "invalid_type", "condition.clearBelow"),

    /* early: count/unique_users/sum, not session, >= or > */
    OK(C("{'op':'>=','value':100,'early':true}")),
    OK(C("{'op':'>','value':100,'early':false}")),
    OK(WAC("{'type':'sliding','size':'5m'}", CNT, "{'op':'>=','value':100,'early':true}")),
    OK(WAC("{'type':'hopping','size':'5m','slide':'1m'}", "{'fn':'unique_users'}",
           "{'op':'>','value':100,'early':true}")),
    OK(WAC(TW, "{'fn':'sum','property':'properties.amount'}",
           "{'op':'>=','value':100,'early':true}")),
    OK(WAC(TW, "{'fn':'mean','property':'properties.amount'}",
           "{'op':'>=','value':100,'early':false}")),
    INV(WAC(TW, "{'fn':'mean','property':'properties.amount'}",
            "{'op':'>=','value':100,'early':true}"),
        "invalid_rule", "condition.early"),
    INV(WAC(TW, "{'fn':'rate_per_minute'}", "{'op':'>=','value':100,'early':true}"), "invalid_rule",
        "condition.early"),
    INV(WAC("{'type':'session','gap':'5m'}", CNT, "{'op':'>=','value':100,'early':true}"),
        "invalid_rule", "condition.early"),
    INV(C("{'op':'<=','value':100,'early':true}"), "invalid_rule", "condition.early"),
    INV(C("{'op':'==','value':100,'early':true}"), "invalid_rule", "condition.early"),
    INV(C("{'op':'>=','value':100,'early':1}"), "invalid_type", "condition.early"),

    /* cooldown: a duration, 0 allowed, at most 10 years */
    OK(R(",'cooldown':'15m'")),
    OK(R(",'cooldown':'0s'")),
    OK(R(",'cooldown':'3650d'")),
    OK(R(",'cooldown':'521w'")),
    INV(R(",'cooldown':'3651d'"), "invalid_rule", "cooldown"),
    INV(R(",'cooldown':'522w'"), "invalid_rule", "cooldown"),
    INV(R(",'cooldown':'999999999999999999999ms'"), "invalid_rule", "cooldown"),
    INV(R(",'cooldown':900"), "invalid_type", "cooldown"),

    /* enabled */
    OK(R(",'enabled':false")),
    OK(R(",'enabled':true")),
    INV(R(",'enabled':'no'"), "invalid_type", "enabled"),
    INV(R(",'enabled':0"), "invalid_type", "enabled"),

    /* the example, whole */
    OK("{'name':'signup burst','eventType':'signup','window':{'type':'sliding','size':'5m'},"
       "'aggregate':{'fn':'count'},'condition':{'op':'>=','value':100,'keepFiringFor':'10m',"
       "'clearBelow':80},'cooldown':'15m'}"),
};
#define NROWS (sizeof rows / sizeof rows[0])

/* Parses r, writes it, parses the text again: the same rule, and the same text again. */
static void check_round_trip(const eo_rule_t *r, const eo_rule_limits_t *lim, const char *what)
{
    eo_buf_t out, out2;
    eo_buf_init(&out, 65536);
    eo_buf_init(&out2, 65536);
    if (eo_rule_to_json(r, &out) != 0)
        fail_msg("%s: to_json failed", what);
    eo_rule_t again;
    eo_event_error_t err;
    if (eo_rule_parse(out.data, out.len, lim, &again, &err) != 0)
        fail_msg("%s: canonical text refused (%s at %s: %s): %s", what, err.code, err.field,
                 err.message, out.data);
    if (!eo_rule_equal(r, &again))
        fail_msg("%s: round trip changed the rule: %s", what, out.data);
    if (eo_rule_to_json(&again, &out2) != 0 || strcmp(out.data, out2.data) != 0)
        fail_msg("%s: canonical text is not stable: %s", what, out.data);
    eo_buf_done(&out);
    eo_buf_done(&out2);
}

static void test_rows(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    size_t accepted = 0, refused = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const row_t *row = &rows[i];
        eo_rule_t r;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int rc = parse_text(row->json, &lim, &r, &err);
        if (rc != row->rc)
            fail_msg("row %zu %s: rc %d (%s at '%s': %s), want %d", i, row->json, rc, err.code,
                     err.field, err.message, row->rc);
        if (!row->code) {
            char what[32];
            snprintf(what, sizeof what, "row %zu", i);
            check_round_trip(&r, &lim, what);
            accepted++;
            continue;
        }
        refused++;
        if (strcmp(err.code, row->code) != 0 || strcmp(err.field, row->field) != 0)
            fail_msg("row %zu %s: %s at '%s' (%s), want %s at '%s'", i, row->json, err.code,
                     err.field, err.message, row->code, row->field);
        size_t ml = strlen(err.message);
        if (ml < 10 || err.message[ml - 1] != '.')
            fail_msg("row %zu: message is not a sentence: '%s'", i, err.message);
    }
    assert_true(accepted >= 60);
    assert_true(refused >= 100);
}

/* A body of n bytes: a valid rule padded with leading spaces. */
static char *padded(size_t n)
{
    char *rule = dq(R(""));
    size_t len = strlen(rule);
    assert_true(n >= len);
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, ' ', n - len);
    memcpy(s + n - len, rule, len + 1);
    free(rule);
    return s;
}

static void test_too_large(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    eo_rule_t r;
    eo_event_error_t err;
    char *s = padded(5000);
    lim.max_rule_bytes = 5000;
    assert_int_equal(eo_rule_parse(s, 5000, &lim, &r, &err), 0);
    lim.max_rule_bytes = 4999;
    assert_int_equal(eo_rule_parse(s, 5000, &lim, &r, &err), EO_ELIMIT);
    assert_string_equal(err.code, "too_large");
    assert_string_equal(err.field, "");
    free(s);

    /* a limit below EO_RULE_JSON_MAX counts as EO_RULE_JSON_MAX */
    lim.max_rule_bytes = 100;
    s = padded(EO_RULE_JSON_MAX);
    assert_int_equal(eo_rule_parse(s, EO_RULE_JSON_MAX, &lim, &r, &err), 0);
    free(s);
    s = padded(EO_RULE_JSON_MAX + 1);
    assert_int_equal(eo_rule_parse(s, EO_RULE_JSON_MAX + 1, &lim, &r, &err), EO_ELIMIT);
    free(s);
}

/* The longest canonical texts fit in EO_RULE_JSON_MAX: names of characters written escaped,
 * paths of 128 bytes, every optional member, the longest durations and numbers. */
static void test_json_max(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    lim.max_groups = INT64_MAX;
    lim.max_horizon_us = EO_DURATION_MAX_US;
    lim.max_window_us = EO_DURATION_MAX_US;
    lim.max_buckets = INT64_MAX;
#define Q4 "\\\"\\\"\\\"\\\"" /* four escaped quotes: \" in the JSON */
#define B4 "\\\\\\\\\\\\\\\\" /* four escaped backslashes */
#define Q16 Q4 Q4 Q4 Q4
#define B16 B4 B4 B4 B4
#define P117 X16 X16 X16 X16 X16 X16 X16 "abcde"
    static const char *const rules[] = {
        "{'name':'" Q16 Q16 Q16 Q16 Q16 Q16 Q16 Q16
        "','eventType':'" B16 B16 B16 B16 B16 B16 B16 B16
        "','window':{'type':'tumbling','size':'1w','zone':'" Z64 "'},"
        "'groupBy':['properties." P117 "','context.abc" P117 "'],'aggregate':{'fn':"
        "'rolling_mean','of':'sum','property':'properties." P117 "','buckets':"
        "9223372036854775807},'emit':'changes','grace':'315359999999ms','horizon':"
        "'315359999999ms','maxGroups':9223372036854775807,'condition':{'op':'>=','value':"
        "-1.2345678901234567e-300,'for':'315359999999ms','keepFiringFor':'315359999999ms',"
        "'clearBelow':-1.2345678901234567e-299,'early':false},'cooldown':'315359999999ms',"
        "'enabled':false}",
        "{'name':'" Q16 Q16 Q16 Q16 Q16 Q16 Q16 Q16
        "','eventType':'" B16 B16 B16 B16 B16 B16 B16 B16
        "','window':{'type':'hopping','size':'315359999999ms','slide':'315359999998ms'},"
        "'groupBy':['properties." P117 "','context.abc" P117 "'],'aggregate':{'fn':"
        "'ewma','of':'sum','property':'properties." P117 "','span':"
        "9223372036854775807},'emit':'changes','grace':'315359999999ms','horizon':"
        "'315359999999ms','maxGroups':9223372036854775807,'condition':{'op':'>=','value':"
        "-1.2345678901234567e-300,'for':'315359999999ms','keepFiringFor':'315359999999ms',"
        "'clearBelow':-1.2345678901234567e-299,'early':false},'cooldown':'315359999999ms',"
        "'enabled':false}",
    };
#undef Q4
#undef B4
#undef Q16
#undef B16
#undef P117
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        eo_rule_t r;
        eo_event_error_t err;
        lim.max_panes = INT64_MAX;
        if (parse_text(rules[i], &lim, &r, &err) != 0)
            fail_msg("rule %zu: %s at %s: %s", i, err.code, err.field, err.message);
        assert_int_equal(strlen(r.name), 128);
        assert_int_equal(strlen(r.event_type), 128);
        eo_buf_t out;
        eo_buf_init(&out, 65536);
        assert_int_equal(eo_rule_to_json(&r, &out), 0);
        if (out.len > EO_RULE_JSON_MAX - 512) /* with room to spare */
            fail_msg("rule %zu: canonical text of %zu bytes", i, out.len);
        eo_buf_done(&out);
    }
}

/* Limits other than the defaults are the ones applied. */
static void test_limits(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    lim.min_window_us = MIN;
    lim.max_window_us = HOUR;
    lim.max_panes = 5;
    lim.max_groups = 7;
    lim.max_horizon_us = 10 * MIN;
    lim.max_buckets = 3;
    static const row_t small[] = {
        OK(W("{'type':'tumbling','size':'1m'}")),
        INV(W("{'type':'tumbling','size':'59s'}"), "invalid_rule", "window.size"),
        OK(W("{'type':'tumbling','size':'1h'}")),
        INV(W("{'type':'tumbling','size':'61m'}"), "invalid_rule", "window.size"),
        OK(W("{'type':'hopping','size':'5m','slide':'1m'}")),
        INV(W("{'type':'hopping','size':'6m','slide':'1m'}"), "invalid_rule", "window.slide"),
        OK(R(",'maxGroups':7")),
        INV(R(",'maxGroups':8"), "invalid_rule", "maxGroups"),
        OK(R(",'horizon':'10m'")),
        INV(R(",'horizon':'11m'"), "invalid_rule", "horizon"),
        OK(A("{'fn':'rolling_mean','buckets':3}")),
        INV(A("{'fn':'rolling_mean','buckets':4}"), "invalid_rule", "aggregate.buckets"),
        OK(A("{'fn':'ewma','span':3}")),
        INV(A("{'fn':'ewma','span':4}"), "invalid_rule", "aggregate.span"),
    };
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        eo_rule_t r;
        eo_event_error_t err;
        memset(&err, 0, sizeof err);
        int rc = parse_text(small[i].json, &lim, &r, &err);
        if (rc != small[i].rc || (small[i].code && (strcmp(err.code, small[i].code) != 0 ||
                                                    strcmp(err.field, small[i].field) != 0)))
            fail_msg("small row %zu: rc %d %s at '%s' (%s)", i, rc, err.code, err.field,
                     err.message);
        if (rc == 0) {
            assert_true(r.max_groups <= 7);
            check_round_trip(&r, &lim, "small limits");
        }
    }
    /* the default maxGroups is the limit */
    eo_rule_t r;
    eo_event_error_t err;
    assert_int_equal(parse_text(R(""), &lim, &r, &err), 0);
    assert_int_equal(r.max_groups, 7);
}

static void test_defaults(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    assert_int_equal(lim.max_window_us, 31 * DAY);
    assert_int_equal(lim.min_window_us, S);
    assert_int_equal(lim.max_panes, 1440);
    assert_int_equal(lim.max_groups, 10000);
    assert_int_equal(lim.max_horizon_us, 7 * DAY);
    assert_int_equal(lim.max_buckets, 1000);
    assert_int_equal(lim.max_rule_bytes, 16384);

    eo_rule_t r;
    eo_event_error_t err;
    assert_int_equal(parse_text(R(""), &lim, &r, &err), 0);
    assert_string_equal(r.name, "signup burst");
    assert_string_equal(r.event_type, "signup");
    assert_int_equal(r.win, EO_WIN_TUMBLING);
    assert_int_equal(r.size_us, 5 * MIN);
    assert_int_equal(r.slide_us, 5 * MIN);
    assert_int_equal(r.gap_us, 0);
    assert_string_equal(r.zone, "UTC");
    assert_int_equal(r.ngroup, 0);
    assert_int_equal(r.fn, EO_AGG_COUNT);
    assert_false(r.of_sum);
    assert_false(r.has_property);
    assert_int_equal(r.emit, EO_EMIT_FINAL);
    assert_int_equal(r.grace_us, 60 * S);
    assert_int_equal(r.horizon_us, 60 * S);
    assert_int_equal(r.max_groups, 10000);
    assert_false(r.cond.present);
    assert_int_equal(r.cooldown_us, 0);
    assert_true(r.enabled);

    /* grace given, horizon not: horizon = grace */
    assert_int_equal(parse_text(R(",'grace':'5m'"), &lim, &r, &err), 0);
    assert_int_equal(r.horizon_us, 5 * MIN);
    /* condition defaults */
    assert_int_equal(parse_text(C("{'op':'>','value':3}"), &lim, &r, &err), 0);
    assert_true(r.cond.present);
    assert_int_equal(r.cond.op, EO_CMP_GT);
    assert_true(r.cond.value == 3.0);
    assert_int_equal(r.cond.for_us, 0);
    assert_int_equal(r.cond.keep_firing_for_us, 0);
    assert_false(r.cond.has_clear);
    assert_false(r.cond.early);
    /* -0 is read as 0 */
    assert_int_equal(parse_text(C("{'op':'>','value':-0.0}"), &lim, &r, &err), 0);
    assert_false(signbit(r.cond.value));
}

static void test_values(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    eo_rule_t r;
    eo_event_error_t err;
    assert_int_equal(
        parse_text("{'name':'n','eventType':'*','window':{'type':'hopping','size':'10m','slide':"
                   "'4m'},'groupBy':['properties.plan.tier','context.geo.country'],"
                   "'aggregate':{'fn':'rolling_sum','of':'sum','property':'properties.amount',"
                   "'buckets':6},'emit':'changes','grace':'0s','horizon':'2h','maxGroups':50,"
                   "'condition':{'op':'<=','value':10.25,'for':'90s','keepFiringFor':'1500ms',"
                   "'clearBelow':12},'cooldown':'1w','enabled':false}",
                   &lim, &r, &err),
        0);
    assert_string_equal(r.event_type, "*");
    assert_int_equal(r.win, EO_WIN_HOPPING);
    assert_int_equal(r.size_us, 10 * MIN);
    assert_int_equal(r.slide_us, 4 * MIN);
    assert_int_equal(r.ngroup, 2);
    assert_int_equal(r.group_by[0].root, EO_PATH_PROPERTIES);
    assert_string_equal(r.group_by[0].text, "properties.plan.tier");
    assert_int_equal(r.group_by[0].nkeys, 2);
    assert_int_equal(r.group_by[0].key_off[0], 11);
    assert_int_equal(r.group_by[0].key_len[0], 4);
    assert_int_equal(r.group_by[0].key_off[1], 16);
    assert_int_equal(r.group_by[0].key_len[1], 4);
    assert_int_equal(r.group_by[1].root, EO_PATH_CONTEXT);
    assert_int_equal(r.group_by[1].nkeys, 2);
    assert_int_equal(r.group_by[1].key_off[0], 8);
    assert_int_equal(r.group_by[1].key_len[0], 3);
    assert_int_equal(r.fn, EO_AGG_ROLLING_SUM);
    assert_true(r.of_sum);
    assert_true(r.has_property);
    assert_string_equal(r.property.text, "properties.amount");
    assert_int_equal(r.buckets, 6);
    assert_int_equal(r.emit, EO_EMIT_CHANGES);
    assert_int_equal(r.grace_us, 0);
    assert_int_equal(r.horizon_us, 2 * HOUR);
    assert_int_equal(r.max_groups, 50);
    assert_int_equal(r.cond.op, EO_CMP_LE);
    assert_true(r.cond.value == 10.25);
    assert_int_equal(r.cond.for_us, 90 * S);
    assert_int_equal(r.cond.keep_firing_for_us, 1500 * MS);
    assert_true(r.cond.has_clear);
    assert_true(r.cond.clear_value == 12.0);
    assert_int_equal(r.cooldown_us, 7 * DAY);
    assert_false(r.enabled);

    assert_int_equal(parse_text(W("{'type':'session','gap':'45m'}"), &lim, &r, &err), 0);
    assert_int_equal(r.win, EO_WIN_SESSION);
    assert_int_equal(r.gap_us, 45 * MIN);
    assert_int_equal(r.size_us, 0);
    assert_int_equal(r.slide_us, 0);
    assert_int_equal(parse_text(W("{'type':'sliding','size':'2h'}"), &lim, &r, &err), 0);
    assert_int_equal(r.size_us, 2 * HOUR);
    assert_int_equal(r.slide_us, 0);
    assert_int_equal(r.gap_us, 0);
    assert_int_equal(
        parse_text(W("{'type':'tumbling','size':'7d','zone':'Asia/Kolkata'}"), &lim, &r, &err), 0);
    assert_string_equal(r.zone, "Asia/Kolkata");
    assert_int_equal(parse_text(R(",'groupBy':['userId','type']"), &lim, &r, &err), 0);
    assert_int_equal(r.group_by[0].root, EO_PATH_USER_ID);
    assert_int_equal(r.group_by[0].nkeys, 0);
    assert_int_equal(r.group_by[1].root, EO_PATH_TYPE);
}

/* The exact canonical text. */
static void test_canonical(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{'name':'signup burst','eventType':'signup','window':{'type':'sliding','size':'5m'},"
         "'aggregate':{'fn':'count'},'condition':{'op':'>=','value':100,'keepFiringFor':'10m',"
         "'clearBelow':80},'cooldown':'15m'}",
         "{'name':'signup burst','eventType':'signup','window':{'type':'sliding','size':'5m'},"
         "'groupBy':[],'aggregate':{'fn':'count'},'emit':'final','grace':'1m','horizon':'1m',"
         "'maxGroups':10000,'condition':{'op':'>=','value':100,'for':'0s','keepFiringFor':'10m',"
         "'clearBelow':80,'early':false},'cooldown':'15m','enabled':true}"},
        /* members in any order come out in the fixed order; zone filled in for 1d */
        {"{'enabled':false,'aggregate':{'span':3,'fn':'ewma'},'groupBy':['context.os'],"
         "'window':{'size':'86400s','type':'tumbling'},'eventType':'e','name':'Caf\\u00e9 "
         "\\\"x\\\"'}",
         "{'name':'Caf\xc3\xa9 \\\"x\\\"','eventType':'e','window':{'type':'tumbling','size':'1d',"
         "'zone':'UTC'},'groupBy':['context.os'],'aggregate':{'fn':'ewma','of':'count','span':3},"
         "'emit':'final','grace':'1m','horizon':'1m','maxGroups':10000,'cooldown':'0s',"
         "'enabled':false}"},
        /* durations in their largest unit; hopping and a property */
        {"{'name':'n','eventType':'e','window':{'type':'hopping','size':'300s','slide':'90s'},"
         "'aggregate':{'fn':'mean','property':'properties.a'},'grace':'0ms','horizon':'168h',"
         "'condition':{'op':'<','value':0.1,'for':'1500ms','keepFiringFor':'1000ms'},"
         "'cooldown':'120m'}",
         "{'name':'n','eventType':'e','window':{'type':'hopping','size':'5m','slide':'90s'},"
         "'groupBy':[],'aggregate':{'fn':'mean','property':'properties.a'},'emit':'final',"
         "'grace':'0s','horizon':'1w','maxGroups':10000,'condition':{'op':'<',"
         "'value':0.10000000000000001,'for':'1500ms','keepFiringFor':'1s','early':false},"
         "'cooldown':'2h','enabled':true}"},
        {"{'name':'n','eventType':'e','window':{'type':'session','gap':'3600000ms'},"
         "'aggregate':{'fn':'count'},'emit':'changes','maxGroups':3,"
         "'condition':{'op':'>','value':1e20,'early':false}}",
         "{'name':'n','eventType':'e','window':{'type':'session','gap':'1h'},'groupBy':[],"
         "'aggregate':{'fn':'count'},'emit':'changes','grace':'1m','horizon':'1m',"
         "'maxGroups':3,'condition':{'op':'>','value':1e+20,'for':'0s','keepFiringFor':'0s',"
         "'early':false},'cooldown':'0s','enabled':true}"},
    };
    eo_rule_limits_t lim = limits();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eo_rule_t r;
        eo_event_error_t err;
        if (parse_text(cases[i].in, &lim, &r, &err) != 0)
            fail_msg("case %zu: %s at %s: %s", i, err.code, err.field, err.message);
        eo_buf_t out;
        eo_buf_init(&out, 65536);
        assert_int_equal(eo_rule_to_json(&r, &out), 0);
        char *want = dq(cases[i].out);
        if (strcmp(out.data, want) != 0)
            fail_msg("case %zu:\n got %s\nwant %s", i, out.data, want);
        free(want);
        eo_buf_done(&out);
        check_round_trip(&r, &lim, "canonical");
    }
}

/* Rules that are not from eo_rule_parse: refused rather than written wrongly. */
static void test_to_json_refuses(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    eo_rule_t base, r;
    eo_event_error_t err;
    assert_int_equal(parse_text(C("{'op':'>=','value':1}"), &lim, &base, &err), 0);
    eo_buf_t out;
    eo_buf_init(&out, 65536);
    assert_int_equal(eo_rule_to_json(&base, &out), 0);

    r = base;
    r.size_us = 1500; /* not whole milliseconds */
    assert_int_equal(eo_rule_to_json(&r, &out), EO_EINVAL);
    r = base;
    r.cooldown_us = -S;
    assert_int_equal(eo_rule_to_json(&r, &out), EO_EINVAL);
    r = base;
    r.win = (eo_win_type_t)9;
    assert_int_equal(eo_rule_to_json(&r, &out), EO_EINVAL);
    r = base;
    r.cond.value = NAN;
    assert_int_equal(eo_rule_to_json(&r, &out), EO_EINVAL);
    r = base;
    r.ngroup = 3;
    assert_int_equal(eo_rule_to_json(&r, &out), EO_EINVAL);
    eo_buf_done(&out);

    /* a full buffer is the buffer's error */
    eo_buf_init(&out, 20);
    assert_int_equal(eo_rule_to_json(&base, &out), EO_ELIMIT);
    eo_buf_done(&out);
}

/* eo_rule_equal sees a change of any field. */
static void test_equal(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    eo_rule_t a, b;
    eo_event_error_t err;
    const char *full = "{'name':'n','eventType':'e','window':{'type':'tumbling','size':'1d'},"
                       "'groupBy':['properties.p','context.c.d'],'aggregate':{'fn':'rolling_sum',"
                       "'of':'sum','property':'properties.x','buckets':4},'condition':{'op':'>=',"
                       "'value':5,'clearBelow':2,'for':'1m','keepFiringFor':'2m','early':false},"
                       "'cooldown':'3m'}";
    assert_int_equal(parse_text(full, &lim, &a, &err), 0);
    assert_int_equal(parse_text(full, &lim, &b, &err), 0);
    assert_true(eo_rule_equal(&a, &b));
#define CHANGED(stmt)                                                                              \
    do {                                                                                           \
        b = a;                                                                                     \
        stmt;                                                                                      \
        if (eo_rule_equal(&a, &b))                                                                 \
            fail_msg("eo_rule_equal misses: %s", #stmt);                                           \
    } while (0)
    CHANGED(b.name[0] = 'm');
    CHANGED(b.event_type[0] = 'f');
    CHANGED(b.win = EO_WIN_HOPPING);
    CHANGED(b.size_us++);
    CHANGED(b.slide_us++);
    CHANGED(b.gap_us++);
    CHANGED(b.zone[0] = 'X');
    CHANGED(b.ngroup = 1);
    CHANGED(b.group_by[0].text[11] = 'q');
    CHANGED(b.group_by[1].root = EO_PATH_PROPERTIES);
    CHANGED(b.group_by[1].nkeys = 1);
    CHANGED(b.group_by[1].key_len[1] = 0);
    CHANGED(b.fn = EO_AGG_ROLLING_MEAN);
    CHANGED(b.of_sum = false);
    CHANGED(b.has_property = false);
    CHANGED(b.property.text[11] = 'y');
    CHANGED(b.buckets++);
    CHANGED(b.span++);
    CHANGED(b.emit = EO_EMIT_CHANGES);
    CHANGED(b.grace_us++);
    CHANGED(b.horizon_us++);
    CHANGED(b.max_groups--);
    CHANGED(b.cond.present = false);
    CHANGED(b.cond.op = EO_CMP_GT);
    CHANGED(b.cond.value = 5.5);
    CHANGED(b.cond.for_us++);
    CHANGED(b.cond.keep_firing_for_us++);
    CHANGED(b.cond.has_clear = false);
    CHANGED(b.cond.clear_value = 1);
    CHANGED(b.cond.early = true);
    CHANGED(b.cooldown_us++);
    CHANGED(b.enabled = false);
#undef CHANGED
}

static void test_duration_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t us;
    } cases[] = {
        {"1ms", 0, MS},
        {"90s", 0, 90 * S},
        {"5m", 0, 5 * MIN},
        {"2h", 0, 2 * HOUR},
        {"1d", 0, DAY},
        {"3w", 0, 21 * DAY},
        {"1000ms", 0, S},
        {"3650d", 0, 3650 * DAY},
        {"315360000000ms", 0, 3650 * DAY},
        {"315360000001ms", EO_EINVAL, 0},
        {"3651d", EO_EINVAL, 0},
        {"0s", EO_EINVAL, 0}, /* zero: only where a member allows it */
        {"0ms", EO_EINVAL, 0},
        {"", EO_EINVAL, 0},
        {"s", EO_EINVAL, 0},
        {"5", EO_EINVAL, 0},
        {"05s", EO_EINVAL, 0},
        {"-5s", EO_EINVAL, 0},
        {"+5s", EO_EINVAL, 0},
        {" 5s", EO_EINVAL, 0},
        {"5s ", EO_EINVAL, 0},
        {"5 s", EO_EINVAL, 0},
        {"5us", EO_EINVAL, 0},
        {"5sec", EO_EINVAL, 0},
        {"5S", EO_EINVAL, 0},
        {"1.5h", EO_EINVAL, 0},
        {"1h30m", EO_EINVAL, 0},
        {"9223372036854775807ms", EO_EINVAL, 0},
        {"99999999999999999999w", EO_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t us = -1;
        int rc = eo_duration_parse(cases[i].text, &us);
        if (rc != cases[i].rc || (rc == 0 && us != cases[i].us))
            fail_msg("'%s': rc %d, %lld us", cases[i].text, rc, (long long)us);
    }
    assert_int_equal(EO_DURATION_MAX_US, 3650 * DAY);
}

/* ---- paths over decoded events ---- */

#define RECV INT64_C(1774872000000000)

typedef struct {
    json_t *json;
    eo_event_t ev;
} event_t;

static void event_load(event_t *e, const char *text)
{
    char *s = dq(text);
    json_error_t jerr;
    e->json = json_loads(s, 0, &jerr);
    if (!e->json)
        fail_msg("test event does not parse: %s: %s", s, jerr.text);
    free(s);
    eo_event_limits_t lim;
    eo_event_limits_default(&lim);
    eo_event_error_t err;
    if (eo_event_normalize(e->json, &lim, RECV, 0, &e->ev, &err) != 0)
        fail_msg("test event refused: %s at %s: %s", err.code, err.field, err.message);
}

static eo_path_t path(const char *text)
{
    eo_rule_limits_t lim = limits();
    char json[512];
    snprintf(json, sizeof json, R(",'groupBy':['%s']"), text);
    eo_rule_t r;
    eo_event_error_t err;
    if (parse_text(json, &lim, &r, &err) != 0)
        fail_msg("path %s refused: %s", text, err.message);
    return r.group_by[0];
}

static void test_paths(void **state)
{
    (void)state;
    static event_t e; /* one event, read by every row */
    event_load(&e, "{'eventType':'checkout','userId':42,'properties':{'plan':'pro','amount':12.5,"
                   "'n':3,'neg':-7,'big':1e300,'third':0.1,'flag':true,'off':false,'none':null,"
                   "'obj':{'a':{'b':{'c':'deep','n':2}}},'arr':[1,2],'text12':'12',"
                   "'utf':'\\u00e9\\u00e9\\u00e9','$a-b_C9':'odd'},"
                   "'context':{'country':'DE','screen':{'w':1920}}}");
    static const struct {
        const char *path;
        bool found;
        const char *text;
        bool is_number;
        double number;
    } cases[] = {
        {"type", true, "checkout", false, 0},
        {"userId", true, "42", false, 0}, /* an integer userId is text */
        {"anonymousId", false, "null", false, 0},
        {"properties.plan", true, "pro", false, 0},
        {"properties.amount", true, "12.5", true, 12.5},
        {"properties.n", true, "3", true, 3},
        {"properties.neg", true, "-7", true, -7},
        {"properties.big", true, "1.0000000000000001e+300", true, 1e300},
        {"properties.third", true, "0.10000000000000001", true, 0.1},
        {"properties.flag", true, "true", false, 0},
        {"properties.off", true, "false", false, 0},
        {"properties.none", true, "null", false, 0},
        {"properties.obj", true, "null", false, 0},
        {"properties.arr", true, "null", false, 0},
        {"properties.text12", true, "12", false, 0}, /* a string is not a number */
        {"properties.utf", true, "\xc3\xa9\xc3\xa9\xc3\xa9", false, 0},
        {"properties.$a-b_C9", true, "odd", false, 0},
        {"properties.obj.a.b.c", true, "deep", false, 0},
        {"properties.obj.a.b.n", true, "2", true, 2},
        {"properties.obj.a.x", false, "null", false, 0},
        {"properties.plan.x", false, "null", false, 0}, /* below a string */
        {"properties.arr.a", false, "null", false, 0},  /* below an array */
        {"properties.missing", false, "null", false, 0},
        {"properties.Plan", false, "null", false, 0}, /* keys are case-sensitive */
        {"context.country", true, "DE", false, 0},
        {"context.screen.w", true, "1920", true, 1920},
        {"context.plan", false, "null", false, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eo_path_t p = path(cases[i].path);
        char out[64];
        memset(out, 'x', sizeof out);
        bool found = eo_rule_path_text(&p, &e.ev, out, sizeof out);
        if (found != cases[i].found || strcmp(out, cases[i].text) != 0)
            fail_msg("%s: found %d, text '%s'", cases[i].path, found, out);
        double d = -1;
        bool num = eo_rule_path_number(&p, &e.ev, &d);
        if (num != cases[i].is_number || (num && d != cases[i].number))
            fail_msg("%s: number %d, %.17g", cases[i].path, num, d);
    }

    /* a cut text: at most cap - 1 bytes, never half a character */
    eo_path_t p = path("properties.utf");
    char small[8];
    assert_true(eo_rule_path_text(&p, &e.ev, small, 5));
    assert_string_equal(small, "\xc3\xa9\xc3\xa9");
    assert_true(eo_rule_path_text(&p, &e.ev, small, 4));
    assert_string_equal(small, "\xc3\xa9");
    assert_true(eo_rule_path_text(&p, &e.ev, small, 2));
    assert_string_equal(small, "");
    p = path("properties.plan");
    assert_true(eo_rule_path_text(&p, &e.ev, small, 3));
    assert_string_equal(small, "pr");
    small[0] = 'z';
    assert_true(eo_rule_path_text(&p, &e.ev, small, 0)); /* nothing written */
    assert_int_equal(small[0], 'z');
    p = path("properties.missing");
    assert_false(eo_rule_path_text(&p, &e.ev, small, 3));
    assert_string_equal(small, "nu");
    json_decref(e.json);

    /* no properties or context at all (NULL in the event), an anonymous user */
    static event_t bare;
    event_load(&bare, "{'eventType':'e','anonymousId':'anon-1'}");
    char out[32];
    p = path("properties.plan");
    assert_false(eo_rule_path_text(&p, &bare.ev, out, sizeof out));
    assert_string_equal(out, "null");
    double d;
    assert_false(eo_rule_path_number(&p, &bare.ev, &d));
    p = path("context.country");
    assert_false(eo_rule_path_text(&p, &bare.ev, out, sizeof out));
    p = path("userId");
    assert_false(eo_rule_path_text(&p, &bare.ev, out, sizeof out));
    assert_string_equal(out, "null");
    assert_false(eo_rule_path_number(&p, &bare.ev, &d));
    p = path("anonymousId");
    assert_true(eo_rule_path_text(&p, &bare.ev, out, sizeof out));
    assert_string_equal(out, "anon-1");
    json_decref(bare.json);
}

/* ---- the alert state machine ---- */

typedef struct {
    double value;
    int64_t at;
    int ret;         /* eo_alert_step's return */
    eo_alert_t want; /* the state after the step */
} step_t;

#define N EO_ALERT_NORMAL
#define P EO_ALERT_PENDING
#define F EO_ALERT_FIRING
#define RS EO_ALERT_RESOLVED
#define END                                                                                        \
    {                                                                                              \
        0, -1, 0, 0                                                                                \
    }

typedef struct {
    const char *name;
    const char *cond; /* the condition member */
    int64_t cooldown;
    step_t steps[16];
} sequence_t;

static const sequence_t sequences[] = {
    {"fires and resolves at once (for 0, keepFiringFor 0), resolved -> normal",
     "{'op':'>=','value':100}",
     0,
     {{50, 1, -1, N},
      {100, 2, F, F},
      {130, 3, -1, F},
      {99, 4, RS, RS},
      {50, 5, -1, N},
      {120, 6, F, F},
      END}},
    {"resolved straight back to firing (no cooldown)",
     "{'op':'>','value':10}",
     0,
     {{11, 1, F, F}, {10, 2, RS, RS}, {11, 3, F, F}, END}},
    {"for: pending until it held that long; a break goes back to normal",
     "{'op':'>=','value':100,'for':'2s'}",
     0,
     {{120, 1 * S, -1, P},
      {120, 2 * S, -1, P},
      {50, 3 * S, -1, N},
      {120, 4 * S, -1, P},
      {150, 5 * S, -1, P},
      {101, 6 * S, F, F},
      {50, 7 * S, RS, RS},
      END}},
    {"the same time twice (an early crossing, then the final value)",
     "{'op':'>=','value':100}",
     0,
     {{120, 5, F, F}, {130, 5, -1, F}, END}},
    {"for with the same time twice stays pending",
     "{'op':'>=','value':100,'for':'1s'}",
     0,
     {{120, 5 * S, -1, P}, {130, 5 * S, -1, P}, {130, 6 * S, F, F}, END}},
    {"keepFiringFor: resolves only after not holding that long; holding again restarts it",
     "{'op':'>=','value':100,'keepFiringFor':'3s'}",
     0,
     {{120, 1 * S, F, F},
      {50, 2 * S, -1, F},
      {50, 4 * S, -1, F},
      {120, 5 * S, -1, F},
      {50, 6 * S, -1, F},
      {50, 8 * S, -1, F},
      {50, 9 * S, RS, RS},
      END}},
    {"clearBelow: stays firing between clearBelow and value, resolves strictly below",
     "{'op':'>=','value':100,'clearBelow':80}",
     0,
     {{120, 1, F, F},
      {90, 2, -1, F},
      {80, 3, -1, F},
      {79.5, 4, RS, RS},
      {90, 5, -1, N}, /* not holding: normal, not firing again */
      {100, 6, F, F},
      END}},
    {"clearBelow with <=: clears strictly above",
     "{'op':'<=','value':10,'clearBelow':20}",
     0,
     {{5, 1, F, F},
      {15, 2, -1, F},
      {20, 3, -1, F},
      {21, 4, RS, RS},
      {12, 5, -1, N},
      {10, 6, F, F},
      END}},
    {"clearBelow and keepFiringFor: a step back into the band restarts the count",
     "{'op':'>=','value':100,'clearBelow':80,'keepFiringFor':'3s'}",
     0,
     {{120, 1 * S, F, F},
      {70, 2 * S, -1, F},
      {90, 3 * S, -1, F},
      {70, 4 * S, -1, F},
      {70, 6 * S, -1, F},
      {70, 7 * S, RS, RS},
      END}},
    {"cooldown: no firing (nor pending) within cooldown after a resolve",
     "{'op':'>=','value':100}",
     10 * S,
     {{120, 1 * S, F, F},
      {50, 2 * S, RS, RS},
      {120, 5 * S, -1, N},
      {120, 11 * S, -1, N},
      {120, 12 * S, F, F},
      END}},
    {"cooldown and for: pending starts after the cooldown",
     "{'op':'>=','value':100,'for':'2s'}",
     10 * S,
     {{120, 0, -1, P},
      {120, 2 * S, F, F},
      {50, 3 * S, RS, RS},
      {120, 12 * S, -1, N},
      {120, 13 * S, -1, P},
      {120, 14 * S, -1, P},
      {120, 15 * S, F, F},
      END}},
    {"> does not hold at the value; == only at it",
     "{'op':'>','value':100}",
     0,
     {{100, 1, -1, N}, {100.5, 2, F, F}, {100, 3, RS, RS}, END}},
    {"==", "{'op':'==','value':3}", 0, {{2, 1, -1, N}, {3, 2, F, F}, {4, 3, RS, RS}, END}},
    {"<", "{'op':'<','value':1}", 0, {{1, 1, -1, N}, {0.5, 2, F, F}, {1, 3, RS, RS}, END}},
};

static void test_alert(void **state)
{
    (void)state;
    eo_rule_limits_t lim = limits();
    for (size_t i = 0; i < sizeof sequences / sizeof sequences[0]; i++) {
        const sequence_t *q = &sequences[i];
        char json[512];
        snprintf(json, sizeof json, R(",'condition':%s"), q->cond);
        eo_rule_t r;
        eo_event_error_t err;
        if (parse_text(json, &lim, &r, &err) != 0)
            fail_msg("%s: %s", q->name, err.message);
        eo_alert_state_t s;
        eo_alert_init(&s);
        assert_int_equal(s.state, EO_ALERT_NORMAL);
        for (size_t k = 0; q->steps[k].at >= 0; k++) {
            const step_t *st = &q->steps[k];
            int ret = eo_alert_step(&r.cond, q->cooldown, &s, st->value, st->at);
            if (ret != st->ret || s.state != st->want)
                fail_msg("%s, step %zu (%g at %lld): returned %d, state %s; want %d, %s", q->name,
                         k, st->value, (long long)st->at, ret, eo_alert_name(s.state), st->ret,
                         eo_alert_name(st->want));
        }
    }

    /* without a condition nothing ever happens */
    eo_rule_t r;
    eo_event_error_t err;
    assert_int_equal(parse_text(R(""), &lim, &r, &err), 0);
    eo_alert_state_t s;
    eo_alert_init(&s);
    for (int k = 0; k < 5; k++)
        assert_int_equal(eo_alert_step(&r.cond, 0, &s, 1e9, k), -1);
    assert_int_equal(s.state, EO_ALERT_NORMAL);

    assert_string_equal(eo_alert_name(EO_ALERT_NORMAL), "normal");
    assert_string_equal(eo_alert_name(EO_ALERT_PENDING), "pending");
    assert_string_equal(eo_alert_name(EO_ALERT_FIRING), "firing");
    assert_string_equal(eo_alert_name(EO_ALERT_RESOLVED), "resolved");
}

static void test_condition_holds(void **state)
{
    (void)state;
    static const struct {
        eo_cmp_t op;
        double value, x;
        bool holds;
    } cases[] = {
        {EO_CMP_GE, 10, 10, true},    {EO_CMP_GE, 10, 9.99, false}, {EO_CMP_GT, 10, 10, false},
        {EO_CMP_GT, 10, 11, true},    {EO_CMP_LE, 10, 10, true},    {EO_CMP_LE, 10, 10.01, false},
        {EO_CMP_LT, 10, 10, false},   {EO_CMP_LT, 10, -1, true},    {EO_CMP_EQ, 10, 10, true},
        {EO_CMP_EQ, 10, 10.5, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        eo_condition_t c = {.present = true, .op = cases[i].op, .value = cases[i].value};
        if (eo_condition_holds(&c, cases[i].x) != cases[i].holds)
            fail_msg("case %zu", i);
    }
}

/* ---- the summary eventId ---- */

static void test_event_id(void **state)
{
    (void)state;
    char id[37], again[37];
    /* known answers from Python:
     *   uuid.uuid5(uuid.UUID('90c16b62-0678-4ae8-b236-1e7d1878eab2'),
     *              'tenant-a\nrule-1\n3\npro|DE\n1774872000000000\nfiring') */
    assert_int_equal(eo_summary_event_id("tenant-a", "rule-1", 3, "pro|DE",
                                         INT64_C(1774872000000000), "firing", id),
                     0);
    assert_string_equal(id, "8ec2fe5c-aa5b-5fa0-a121-ba7d3604f530");
    assert_int_equal(eo_summary_event_id("tenant-a", "rule-1", 3, "pro|DE",
                                         INT64_C(1774872000000000), "resolved", id),
                     0);
    assert_string_equal(id, "c2b016cd-94be-50b1-8937-8e848cedb4fd");
    /* an empty (or NULL) group and a start before the epoch: ...\n3\n\n-300000000\nresolved */
    assert_int_equal(eo_summary_event_id("tenant-a", "rule-1", 3, NULL, -300 * S, "resolved", id),
                     0);
    assert_string_equal(id, "11d2dad0-2e55-5c5d-a383-6283a8264ce7");
    assert_int_equal(eo_summary_event_id("tenant-a", "rule-1", 3, "", -300 * S, "resolved", again),
                     0);
    assert_string_equal(id, again);

    /* determinism, and every input counts */
    const char *base_args[] = {"t", "r", "g", "firing"};
    assert_int_equal(
        eo_summary_event_id(base_args[0], base_args[1], 1, base_args[2], 60 * S, base_args[3], id),
        0);
    assert_int_equal(eo_summary_event_id("t", "r", 1, "g", 60 * S, "firing", again), 0);
    assert_string_equal(id, again);
    char other[6][37];
    assert_int_equal(eo_summary_event_id("u", "r", 1, "g", 60 * S, "firing", other[0]), 0);
    assert_int_equal(eo_summary_event_id("t", "s", 1, "g", 60 * S, "firing", other[1]), 0);
    assert_int_equal(eo_summary_event_id("t", "r", 2, "g", 60 * S, "firing", other[2]), 0);
    assert_int_equal(eo_summary_event_id("t", "r", 1, "h", 60 * S, "firing", other[3]), 0);
    assert_int_equal(eo_summary_event_id("t", "r", 1, "g", 61 * S, "firing", other[4]), 0);
    assert_int_equal(eo_summary_event_id("t", "r", 1, "g", 60 * S, "resolved", other[5]), 0);
    for (size_t i = 0; i < 6; i++) {
        assert_string_not_equal(id, other[i]);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(other[k], other[i]);
    }
    /* the layout: 8-4-4-4-12 lower-case hex, version 5, variant 10 */
    assert_int_equal(strlen(id), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(id[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", id[i]));
    }
    assert_int_equal(id[14], '5');
    assert_non_null(strchr("89ab", id[19]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_json_max),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_to_json_refuses),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_alert),
        cmocka_unit_test(test_condition_holds),
        cmocka_unit_test(test_event_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The cache record and event JSON of an accepted quote, as msgspec writes them (see _quotes.c). */
#ifndef QUOTES_ENCODE_H
#define QUOTES_ENCODE_H

#include "quotes_parse.h"

static char *put(char *o, const char *s, size_t n) { memcpy(o, s, n); return o + n; }
#define PUT(o, lit) put((o), (lit), sizeof(lit) - 1)

static char *put_span(char *o, const char *base, Span s) { return put(o, base + s.off, (size_t)s.len); }

static char *put_int(char *o, long long v) {
    char d[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { d[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u);
    if (v < 0) *o++ = '-';
    while (n) *o++ = d[--n];
    return o;
}

static char *put_exchange(char *o, const char *base, Span s) {
    if (s.len < 0) return PUT(o, "null");
    *o++ = '"';
    o = put_span(o, base, s);
    *o++ = '"';
    return o;
}

/* The record and event are under 512 bytes of fields we bound, plus the epoch. */
#define BUFFER 2048

static PyObject *event_json(const char *base, const Slot *q, const char *epoch, size_t elen) {
    char buf[BUFFER], *o = buf;
    o = PUT(o, "{\"event_type\":\"price.updated\",\"symbol\":\"");
    o = put_span(o, base, q->sym);
    o = PUT(o, "\",\"price\":\"");
    o = put_decimal(o, q->mid, q->mid_exp);
    o = PUT(o, "\",\"bid\":\"");
    o = put_span(o, base, q->bp.text);
    o = PUT(o, "\",\"ask\":\"");
    o = put_span(o, base, q->ap.text);
    o = PUT(o, "\",\"bid_size\":");
    o = put_int(o, q->bs);
    o = PUT(o, ",\"ask_size\":");
    o = put_int(o, q->as);
    o = PUT(o, ",\"seq\":");
    o = put_int(o, q->seq);
    o = PUT(o, ",\"epoch\":");
    o = put(o, epoch, elen);
    o = PUT(o, ",\"timestamp\":\"");
    o = put_span(o, base, q->t);
    o = PUT(o, "\"}");
    return PyBytes_FromStringAndSize(buf, o - buf);
}

static PyObject *price_json(const char *base, const Slot *q, const char *epoch, size_t elen) {
    char buf[BUFFER], *o = buf;
    o = PUT(o, "{\"symbol\":\"");
    o = put_span(o, base, q->sym);
    o = PUT(o, "\",\"bid\":\"");
    o = put_span(o, base, q->bp.text);
    o = PUT(o, "\",\"ask\":\"");
    o = put_span(o, base, q->ap.text);
    o = PUT(o, "\",\"mid\":\"");
    o = put_decimal(o, q->mid, q->mid_exp);
    o = PUT(o, "\",\"bid_size\":");
    o = put_int(o, q->bs);
    o = PUT(o, ",\"ask_size\":");
    o = put_int(o, q->as);
    o = PUT(o, ",\"timestamp\":\"");
    o = put_span(o, base, q->t);
    o = PUT(o, "\",\"exchange\":");
    o = put_exchange(o, base, q->bx);
    o = PUT(o, ",\"bid_exchange\":");
    o = put_exchange(o, base, q->bx);
    o = PUT(o, ",\"ask_exchange\":");
    o = put_exchange(o, base, q->ax);
    o = PUT(o, ",\"seq\":");
    o = put_int(o, q->seq);
    o = PUT(o, ",\"epoch\":");
    o = put(o, epoch, elen);
    *o++ = '}';
    return PyBytes_FromStringAndSize(buf, o - buf);
}

#endif

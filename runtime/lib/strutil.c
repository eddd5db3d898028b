#include "strutil.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sbx_format_rfc3339(const struct timespec *ts, int frac_digits, char *buf, size_t len)
{
    /* Days to civil date: H. Hinnant's algorithm, proleptic Gregorian. */
    long long secs = ts->tv_sec, days = secs / 86400, rem = secs % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1;
    long long m = mp < 10 ? mp + 3 : mp - 9, y = yoe + era * 400 + (m <= 2);
    char frac[16] = "";
    if (frac_digits > 0) {
        long ns = ts->tv_nsec;
        for (int i = frac_digits; i < 9; i++)
            ns /= 10;
        snprintf(frac, sizeof(frac), ".%0*ld", frac_digits > 9 ? 9 : frac_digits, ns);
    }
    snprintf(buf, len, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld%sZ", y, m, d, rem / 3600,
             rem / 60 % 60, rem % 60, frac);
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t
sbx_pct_decode(const char *in, size_t n, char *out, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = hexval((unsigned char)in[i + 1]), l = hexval((unsigned char)in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (char)(h * 16 + l);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c == 0)
            return -1;
        out[o++] = c;
    }
    return (ssize_t)o;
}

bool
sbx_ct_equal(const char *got, size_t gotlen, const char *want, size_t wantlen)
{
    unsigned char d = (unsigned char)(gotlen != wantlen);
    for (size_t i = 0; i < wantlen; i++)
        d |= (unsigned char)((i < gotlen ? (unsigned char)got[i] : 0) ^ (unsigned char)want[i]);
    return d == 0;
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when there is none. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp, min;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (n < len)
        return 0;
    cp = c & (0xffu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

json_t *
sbx_json_text(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t bad = 0;
    for (size_t i = 0, l; i < n; i += l ? l : 1)
        if ((l = utf8_len(u + i, n - i)) == 0)
            bad++;
    if (bad == 0)
        return json_stringn_nocheck(s, n);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *o = malloc(n + 2 * bad + 1);
    if (o == NULL)
        return NULL;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t l = utf8_len(u + i, n - i);
        if (l) {
            memcpy(o + w, s + i, l);
            w += l;
            i += l;
        } else {
            memcpy(o + w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        }
    }
    json_t *j = json_stringn_nocheck(o, w);
    free(o);
    return j;
}

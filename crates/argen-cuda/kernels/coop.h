/* Work-group cooperative primitives over vocabulary rows (256 lanes, every lane calls them).
 * Scratch arrays are __local / __shared__ and ARGEN_LANES long; each helper ends with a barrier
 * so its result (broadcast through local memory) may be read at once by every lane. */
#ifndef ARGEN_COOP_H
#define ARGEN_COOP_H

/* Exact sum of a u64 value held by each lane (wrapping; callers keep sums below 2^64). */
INLINE u64 coop_sum_u64(LOCAL u64 *sa, u64 mine) {
    u32 l = LANE();
    sa[l] = mine;
    BARRIER();
    for (u32 w = ARGEN_LANES / 2; w >= 1; w >>= 1) {
        if (l < w) sa[l] += sa[l + w];
        BARRIER();
    }
    u64 r = sa[0];
    BARRIER();
    return r;
}

/* Exact sum of a u128 value held by each lane. */
INLINE u128 coop_sum_u128(LOCAL u64 *sa, LOCAL u64 *sb, u128 mine) {
    u32 l = LANE();
    sa[l] = mine.lo; sb[l] = mine.hi;
    BARRIER();
    for (u32 w = ARGEN_LANES / 2; w >= 1; w >>= 1) {
        if (l < w) {
            u128 s = u128_add(u128_make(sb[l], sa[l]), u128_make(sb[l + w], sa[l + w]));
            sa[l] = s.lo; sb[l] = s.hi;
        }
        BARRIER();
    }
    u128 r = u128_make(sb[0], sa[0]);
    BARRIER();
    return r;
}

/* The canonical lane-tree sum of argen_core::reduce: lane j holds its strided partial sum. */
INLINE f64 coop_lane_tree_f64(LOCAL f64 *sd, f64 mine) {
    u32 l = LANE();
    sd[l] = mine;
    BARRIER();
    for (u32 w = ARGEN_LANES / 2; w >= 1; w >>= 1) {
        if (l < w) sd[l] = sd[l] + sd[l + w];
        BARRIER();
    }
    f64 r = sd[0];
    BARRIER();
    return r;
}

/* Maximum of a u64 held by each lane. */
INLINE u64 coop_max_u64(LOCAL u64 *sa, u64 mine) {
    u32 l = LANE();
    sa[l] = mine;
    BARRIER();
    for (u32 w = ARGEN_LANES / 2; w >= 1; w >>= 1) {
        if (l < w && sa[l + w] > sa[l]) sa[l] = sa[l + w];
        BARRIER();
    }
    u64 r = sa[0];
    BARRIER();
    return r;
}

/* Minimum of a u32 held by each lane. */
INLINE u32 coop_min_u32(LOCAL u32 *sc, u32 mine) {
    u32 l = LANE();
    sc[l] = mine;
    BARRIER();
    for (u32 w = ARGEN_LANES / 2; w >= 1; w >>= 1) {
        if (l < w && sc[l + w] < sc[l]) sc[l] = sc[l + w];
        BARRIER();
    }
    u32 r = sc[0];
    BARRIER();
    return r;
}

INLINE u64 sat_add_u64(u64 a, u64 b) { u64 s = a + b; return s < a ? ~(u64)0 : s; }

#define NOT_FOUND 0xffffffffu

/* Inverse CDF (argen_core::dist::Dist::locate): the token t with prefix(t) <= r < prefix(t + 1),
 * prefixes summed (saturating) in token order; NOT_FOUND if r is not below the row's mass.
 * Lane j owns the contiguous chunk [j·C, (j+1)·C); chunk sums are scanned by lane 0. */
INLINE u32 coop_locate(GLOBAL const u64 *w, u32 v, u64 r, LOCAL u64 *sa, LOCAL u32 *sc) {
    u32 l = LANE();
    u32 chunk = (v + ARGEN_LANES - 1) / ARGEN_LANES;
    u32 lo = l * chunk; if (lo > v) lo = v;
    u32 hi = lo + chunk; if (hi > v) hi = v;
    u64 s = 0;
    for (u32 i = lo; i < hi; i++) s = sat_add_u64(s, w[i]);
    sa[l] = s;
    BARRIER();
    if (l == 0) {
        u64 acc = 0;
        for (u32 j = 0; j < ARGEN_LANES; j++) { u64 c = sa[j]; sa[j] = acc; acc = sat_add_u64(acc, c); }
        sc[0] = NOT_FOUND;
    }
    BARRIER();
    u64 acc = sa[l];
    if (r >= acc && r < sat_add_u64(acc, s)) {
        for (u32 i = lo; i < hi; i++) {
            acc = sat_add_u64(acc, w[i]);
            if (r < acc) { sc[0] = i; break; }
        }
    }
    BARRIER();
    u32 t = sc[0];
    BARRIER();
    return t;
}

#endif

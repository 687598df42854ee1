/* Deterministic exp and RNG scheme v1 — line-for-line ports of argen_core::detmath,
 * argen_core::chacha and argen_core::rng (the specification lives in rng.rs). */
#ifndef ARGEN_RNG_H
#define ARGEN_RNG_H

/* ------------------------------------------------ detmath::exp_f32 (same bit patterns) */
INLINE float pow2_f32(i32 k) { return AS_F32(((u32)(k + 127)) << 23); }

INLINE float exp_f32(float x) {
    const float LOG2E = AS_F32(0x3fb8aa3bu);
    const float C1 = AS_F32(0x3f318000u);
    const float C2 = AS_F32(0xb95e8083u);
    const float P0 = AS_F32(0x39506967u);
    const float P1 = AS_F32(0x3ab743ceu);
    const float P2 = AS_F32(0x3c088908u);
    const float P3 = AS_F32(0x3d2aa9c1u);
    const float P4 = AS_F32(0x3e2aaaaau);
    const float P5 = AS_F32(0x3f000000u);
    const float MAX_ARG = AS_F32(0x42b17217u); /* 88.72283 */
    const float MIN_ARG = AS_F32(0xc2cff1b4u); /* -103.97208 */
    if (is_nan_f32(x)) return x;
    if (x > MAX_ARG) return F32_POS_INF;
    if (x < MIN_ARG) return 0.0f;
    float t = LOG2E * x;
    float kf = FLOOR_F32(t + 0.5f);
    float a = kf * C1;
    float b = kf * C2;
    float r = (x - a) - b;
    float z = r * r;
    float poly = P0 * r;
    poly = poly + P1; poly = poly * r;
    poly = poly + P2; poly = poly * r;
    poly = poly + P3; poly = poly * r;
    poly = poly + P4; poly = poly * r;
    poly = poly + P5;
    float pz = poly * z;
    float p = (pz + r) + 1.0f;
    i32 k = (i32)kf;
    if (k > 127) return (p * pow2_f32(k - 1)) * 2.0f;
    if (k < -126) return (p * pow2_f32(k + 64)) * pow2_f32(-64);
    return p * pow2_f32(k);
}

/* ------------------------------------------------ ChaCha20 block (64-bit counter and nonce) */
INLINE u32 rotl32(u32 x, u32 n) { return (x << n) | (x >> (32u - n)); }

#define ARGEN_QR(a, b, c, d) \
    s[a] += s[b]; s[d] = rotl32(s[d] ^ s[a], 16); \
    s[c] += s[d]; s[b] = rotl32(s[b] ^ s[c], 12); \
    s[a] += s[b]; s[d] = rotl32(s[d] ^ s[a], 8);  \
    s[c] += s[d]; s[b] = rotl32(s[b] ^ s[c], 7);

INLINE void chacha20_block(const u32 key[8], u64 counter, u64 nonce, u32 out[16]) {
    u32 in[16];
    in[0] = 0x61707865u; in[1] = 0x3320646eu; in[2] = 0x79622d32u; in[3] = 0x6b206574u;
    for (int i = 0; i < 8; i++) in[4 + i] = key[i];
    in[12] = (u32)counter; in[13] = (u32)(counter >> 32);
    in[14] = (u32)nonce; in[15] = (u32)(nonce >> 32);
    u32 s[16];
    for (int i = 0; i < 16; i++) s[i] = in[i];
    for (int r = 0; r < 10; r++) {
        ARGEN_QR(0, 4, 8, 12) ARGEN_QR(1, 5, 9, 13) ARGEN_QR(2, 6, 10, 14) ARGEN_QR(3, 7, 11, 15)
        ARGEN_QR(0, 5, 10, 15) ARGEN_QR(1, 6, 11, 12) ARGEN_QR(2, 7, 8, 13) ARGEN_QR(3, 4, 9, 14)
    }
    for (int i = 0; i < 16; i++) out[i] = s[i] + in[i];
}

/* ------------------------------------------------ keyed streams (rng.rs steps 1-7) */
#define PURPOSE_SAMPLE 1u
#define PURPOSE_ACCEPT 2u
#define PURPOSE_RESIDUAL 3u
#define WORDS_PER_KEY 2048u

typedef struct {
    u32 key[8];
    u64 nonce;
    u64 counter_base; /* (position << 32) | (token << 8) */
    u32 block[16];
    u32 next;
} KeyedStream;

INLINE void stream_init(KeyedStream *st, u64 seed, u32 stream, u32 purpose, u32 position, u32 token) {
    st->key[0] = (u32)seed; st->key[1] = (u32)(seed >> 32);
    st->key[2] = 0x65677261u; /* 'a','r','g','e' */
    st->key[3] = 0x6e722d6eu; /* 'n','-','r','n' */
    st->key[4] = 0x31762d67u; /* 'g','-','v','1' */
    st->key[5] = 0; st->key[6] = 0; st->key[7] = 0;
    st->nonce = ((u64)purpose << 32) | (u64)stream;
    st->counter_base = ((u64)position << 32) | ((u64)(token & 0xffffffu) << 8);
    st->next = 0;
}

/* Next word; returns 0 and sets *ok = 0 once the stream is spent. */
INLINE u64 stream_next(KeyedStream *st, int *ok) {
    if (st->next >= WORDS_PER_KEY) { *ok = 0; return 0; }
    u32 within = st->next & 7u;
    if (within == 0) chacha20_block(st->key, st->counter_base | (u64)(st->next >> 3), st->nonce, st->block);
    st->next += 1;
    *ok = 1;
    return (u64)st->block[2 * within] | ((u64)st->block[2 * within + 1] << 32);
}

/* n mod d for 128-bit values by shift-and-subtract (only reached when a stream is spent). */
INLINE u128 u128_mod(u128 n, u128 d) {
    u128 r = u128_make(0, 0);
    for (int i = 127; i >= 0; i--) {
        r = u128_shl(r, 1);
        u64 bit = i >= 64 ? (n.hi >> (i - 64)) & 1 : (n.lo >> i) & 1;
        r.lo |= bit;
        if (!u128_lt(r, d)) r = u128_sub(r, d);
    }
    return r;
}

/* Uniform integer below n (n >= 1) by mask-and-reject, rng.rs step 6. */
INLINE u128 stream_below(KeyedStream *st, u128 n) {
    if (n.hi == 0 && n.lo == 1) return u128_make(0, 0);
    u128 n1 = u128_sub(n, u128_from(1));
    u32 bits = u128_bits(n1);
    u128 mask = bits == 128 ? u128_make(~(u64)0, ~(u64)0) : u128_sub(u128_shl(u128_from(1), bits), u128_from(1));
    u128 cand = u128_make(0, 0);
    for (;;) {
        int ok;
        u64 lo = stream_next(st, &ok);
        if (!ok) return u128_mod(cand, n);
        u128 v = u128_from(lo);
        if (bits > 64) {
            u64 hi = stream_next(st, &ok);
            if (!ok) return u128_mod(cand, n);
            v.hi = hi;
        }
        cand.lo = v.lo & mask.lo;
        cand.hi = v.hi & mask.hi;
        if (u128_lt(cand, n)) return cand;
    }
}

#endif

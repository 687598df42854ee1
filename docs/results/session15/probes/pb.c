/* Session 15 probe (docs/runtime-performance.md): one core streaming packed f32 weights (256 MiB,
 * or a 192 KiB block resident in L2) through minimal multi-row FMA loops that broadcast the
 * weights against paired input rows ("RxC" tiles), or broadcast the inputs as avx512::tile does
 * ("x8x4", with `xb`; its memory columns run without prefetch: only its L2 column counts).
 *     gcc -O3 -funroll-loops pb.c -o /tmp/pb && /tmp/pb && /tmp/pb xb
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#define BYTES (256UL << 20)
#define KMAX 2048
static float xp[16 * KMAX] __attribute__((aligned(64)));
static double now(void){struct timespec s;clock_gettime(CLOCK_MONOTONIC,&s);return s.tv_sec+s.tv_nsec*1e-9;}
/* P pairs of rows x C cols (C=4: whole tile per k loop; C=2: half tiles). acc[p][c] = [row 2p col c | row 2p+1 col c].
   weights: packed tile (4 cols x k), per step 128 B: cols 0,1 (line 0), cols 2,3 (line 1); col c block at 8*c.
   inputs paired: pair p, step s: 16 floats at xp + p*2k + 16 s. */
#define PASS(P,C) __attribute__((target("avx512f,fma"),noinline)) static float pass##P##_##C(const float*w,size_t n,long pf,long k){\
  __m512 a[P][C]; float sink=0; const long tile=4*k; \
  for(size_t t0=0;t0+tile<=n;t0+=tile){ for(int h=0;h<4/C;h++){ \
    for(int p=0;p<P;p++) for(int c=0;c<C;c++) a[p][c]=_mm512_setzero_ps(); \
    const float*wt=w+t0+C*8*h; \
    for(long s=0;s<k/8;s++){ if(h==0){ _mm_prefetch((const char*)(wt+32*s)+pf,_MM_HINT_T0); _mm_prefetch((const char*)(wt+32*s)+pf+64,_MM_HINT_T0);}\
      __m512 wb[C]; for(int c=0;c<C;c++) wb[c]=_mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(wt+32*s+8*c))));\
      for(int p=0;p<P;p++){ const __m512 xv=_mm512_loadu_ps(xp+p*2*k+16*s); for(int c=0;c<C;c++) a[p][c]=_mm512_fmadd_ps(xv,wb[c],a[p][c]);} }\
    __m512 q=_mm512_setzero_ps(); for(int p=0;p<P;p++) for(int c=0;c<C;c++) q=_mm512_add_ps(q,a[p][c]); sink+=_mm512_reduce_add_ps(q);} } return sink; }
#define PASSX(R) __attribute__((target("avx512f,fma"),noinline)) static float passx##R(const float*w,size_t n,long pf,long k){\
  __m512 a[R][2]; float sink=0; const long tile=4*k; \
  for(size_t t0=0;t0+tile<=n;t0+=tile){ for(int r=0;r<R;r++) a[r][0]=a[r][1]=_mm512_setzero_ps(); const float*wt=w+t0;\
    for(long s=0;s<k/8;s++){ const __m512 w0=_mm512_loadu_ps(wt+32*s), w1=_mm512_loadu_ps(wt+32*s+16);\
      for(int r=0;r<R;r++){ const __m512 xv=_mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(xp+r*k+s*8)))); a[r][0]=_mm512_fmadd_ps(xv,w0,a[r][0]); a[r][1]=_mm512_fmadd_ps(xv,w1,a[r][1]);} }\
    __m512 q=_mm512_setzero_ps(); for(int r=0;r<R;r++) q=_mm512_add_ps(q,_mm512_add_ps(a[r][0],a[r][1])); sink+=_mm512_reduce_add_ps(q);} return sink; }
PASSX(8)
PASS(4,4) PASS(6,4) PASS(7,4) PASS(8,2) PASS(4,2)
typedef float(*F)(const float*,size_t,long,long);
int main(int argc,char**argv){ float*w=mmap(0,BYTES,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); madvise(w,BYTES,MADV_HUGEPAGE);
 const size_t n=BYTES/4; for(size_t i=0;i<n;i++) w[i]=(i%97)*1e-3f; for(int i=0;i<16*KMAX;i++) xp[i]=i*1e-4f;
 /* "xb": the input broadcast (x8x4, as avx512::tile) against the weight broadcast (8x4) at
    GPT-B's input widths; default: weight-broadcast tiles of 8-16 rows. */
 const int xb = argc > 1 && argv[1][0] == 'x';
 long ks[3]; if (xb) { ks[0]=256; ks[1]=768; ks[2]=2048; } else { ks[0]=256; ks[1]=384; ks[2]=768; }
 long pfs[]={8192,16384}; float sink=0;
 struct {F f; int R; const char*name;} fs[]={{passx8,8,"x8x4"},{pass4_4,8,"8x4"},{pass6_4,12,"12x4"},{pass7_4,14,"14x4"},{pass8_2,16,"16x2"},{pass4_2,8,"8x2"}};
 const int f0 = xb ? 0 : 1, f1 = xb ? 2 : 6;
 for(int fi=f0;fi<f1;fi++) for(int ki=0;ki<3;ki++){ long k=ks[ki]; int R=fs[fi].R; printf("%-5s K=%-4ld (in %3ld KiB):",fs[fi].name,k,R*k*4/1024);
  for(int pi=0;pi<2;pi++){ double best=1e9; for(int rep=0;rep<3;rep++){ double t=now(); sink+=fs[fi].f(w,n,pfs[pi],k); double d=now()-t; if(d<best)best=d;}
   double fl=2.0*R*(double)n; printf("  pf%2ldK %5.1f GB/s %5.1f GF",pfs[pi]/1024,BYTES/best/1e9,fl/best/1e9);}
  /* L2 resident: 192 KiB block looped */
  { size_t nb=(192<<10)/4; nb=nb/(4*k)*(4*k); int loops=(int)(n/nb); double best=1e9; for(int rep=0;rep<3;rep++){ double t=now(); for(int l=0;l<loops;l++) sink+=fs[fi].f(w,nb,0,k); double d=now()-t; if(d<best)best=d;}
   printf("  | L2 %5.1f GF", 2.0*R*(double)nb*loops/best/1e9);}
  printf("\n");}
 return sink==1234.5f;}

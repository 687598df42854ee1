#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#define BYTES (256UL << 20)
#define KMAX 2048
static float xin[16 * KMAX] __attribute__((aligned(64)));
static double now(void){struct timespec s;clock_gettime(CLOCK_MONOTONIC,&s);return s.tv_sec+s.tv_nsec*1e-9;}
/* R rows x 2 cols (one zmm per row); tiles of 4 cols x k, packed: per step 128 B, half h = line h.
   For each tile: half 0 over k, then half 1 over k. */
#define PASS(R) __attribute__((target("avx512f,fma"),noinline)) static float pass##R(const float*w,size_t n,long pf,long k){\
  __m512 a[R]; float sink=0; const long tile=4*k; \
  for(size_t t0=0;t0+tile<=n;t0+=tile){ for(int h=0;h<2;h++){ \
    for(int r=0;r<R;r++) a[r]=_mm512_setzero_ps(); \
    const float*wt=w+t0+16*h; \
    for(long s=0;s<k/8;s++){ if(h==0) _mm_prefetch((const char*)(wt+32*s)+pf,_MM_HINT_T0), _mm_prefetch((const char*)(wt+32*s)+pf+64,_MM_HINT_T0);\
      const __m512 w0=_mm512_loadu_ps(wt+32*s); \
      for(int r=0;r<R;r++){ const __m512 xv=_mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(xin+r*k+s*8)))); a[r]=_mm512_fmadd_ps(xv,w0,a[r]);} }\
    __m512 q=_mm512_setzero_ps(); for(int r=0;r<R;r++) q=_mm512_add_ps(q,a[r]); sink+=_mm512_reduce_add_ps(q);} } return sink; }
PASS(8) PASS(12) PASS(14) PASS(16)
int main(int argc,char**argv){ float*w=mmap(0,BYTES,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); madvise(w,BYTES,MADV_HUGEPAGE);
 const size_t n=BYTES/4; for(size_t i=0;i<n;i++) w[i]=(i%97)*1e-3f; for(int i=0;i<16*KMAX;i++) xin[i]=i*1e-4f;
 long ks[]={128,256,384,768}; long pfs[]={4096,8192,16384}; float sink=0; int Rs[]={8,12,14,16};
 for(int ri=0;ri<4;ri++) for(int ki=0;ki<4;ki++){ long k=ks[ki]; int R=Rs[ri]; printf("R=%2d K=%-4ld (in %3ld KiB):",R,k,R*k*4/1024);
  for(int pi=0;pi<3;pi++){ double best=1e9; for(int rep=0;rep<3;rep++){ double t=now();
   sink+= R==8?pass8(w,n,pfs[pi],k):R==12?pass12(w,n,pfs[pi],k):R==14?pass14(w,n,pfs[pi],k):pass16(w,n,pfs[pi],k); double d=now()-t; if(d<best)best=d;}
   double fl=2.0*R*(double)n; printf("  pf%2ldK %5.1f GB/s %5.1f GF",pfs[pi]/1024,BYTES/best/1e9,fl/best/1e9);} printf("\n");}
 return sink==1234.5f;}

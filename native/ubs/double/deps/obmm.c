/* Stand-in for /usr/lib64/libobmm.so.1, which the SDK dlopens by absolute path at initialize (the double
 * takes the path from UBSM_DOUBLE_OBMM). The double looks this symbol up to prove it loaded the right file. */
__attribute__((visibility("default"))) int ubsm_standin_obmm(void) { return 1; }

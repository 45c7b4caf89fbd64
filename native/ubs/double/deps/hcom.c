/* Stand-in for libhcom.so.0 (the SDK's IPC transport); see numa.c. */
__attribute__((visibility("default"))) int ubsm_standin_hcom(void) { return 0; }

/* Stand-in for libnuma.so.1: the test double of libubsm_sdk.so needs it like the vendor SDK does, so a
 * container without it cannot load the SDK. One no-op export the double calls. */
__attribute__((visibility("default"))) int ubsm_standin_numa(void) { return 0; }

/*
 * nri-memshare's own declarations of the subset of the UB memory SDK (libubsm_sdk.so) ABI that the
 * project uses. Written from docs/ubs-sdk.md (A.1/A.2); not the vendor header. Used by the test double,
 * the consumer program, and as the reference for the koffi structs in native/ubs-sdk.ts.
 *
 * The vendor's def header uses `bool` without <stdbool.h> (it is compiled as C++); we include it.
 */
#ifndef NRI_MEMSHARE_UBS_MEM_H
#define NRI_MEMSHARE_UBS_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UBSM_API __attribute__((visibility("default")))

#define MAX_HOST_NAME_DESC_LENGTH 64
#define MAX_SHM_NAME_LENGTH 48          /* names are 1..47 chars; buffers hold 48 + NUL */
#define MAX_REGION_NAME_DESC_LENGTH 48
#define MAX_REGION_NODE_NUM 16
#define MAX_MEMID_NUM 2048
#define MAX_OBMM_SHMDEV_PATH_LEN 64

/* Share flags (allocate). MALLOC_WITH_NUMA is for leases only; shares reject it. */
#define UBSM_FLAG_CACHE 0x0UL
#define UBSM_FLAG_WITH_LOCK 0x1UL
#define UBSM_FLAG_NONCACHE 0x2UL
#define UBSM_FLAG_WR_DELAY_COMP 0x4UL
#define UBSM_FLAG_ONLY_IMPORT_NONCACHE 0x8UL
#define UBSM_FLAG_MEM_ANONYMOUS 0x10UL
#define UBSM_FLAG_MMAP_HUGETLB_PMD 0x20UL
#define UBSM_FLAG_MALLOC_WITH_NUMA 0x40UL

typedef enum {
    UBSM_OK = 0,
    UBSM_ERR_PARAM_INVALID = 6010,
    UBSM_ERR_NOPERM = 6011,
    UBSM_ERR_MEMORY = 6012,
    UBSM_ERR_UNIMPL = 6013,
    UBSM_CHECK_RESOURCE_ERROR = 6014,
    UBSM_ERR_MEMLIB = 6015,
    UBSM_ERR_NO_NEEDED = 6016,
    UBSM_ERR_BUSY = 6017,
    UBSM_ERR_NOT_FOUND = 6020,
    UBSM_ERR_ALREADY_EXIST = 6021,
    UBSM_ERR_MALLOC_FAIL = 6022,
    UBSM_ERR_RECORD = 6023,
    UBSM_ERR_IN_USING = 6024,
    UBSM_ERR_NET = 6040,
    UBSM_ERR_UBSE = 6050,
    UBSM_ERR_OBMM = 6051,
    UBSM_ERR_LOCK_NOT_SUPPORTED = 6060,
    UBSM_ERR_LOCK_ALREADY_LOCKED = 6061,
    UBSM_ERR_DLOCK = 6062,
    UBSM_ERR_BUFF = 6099,
} ubsmshmem_ret_t;

/*
 * The vendor type is an empty struct: size 0 under GNU C, 1 under C++ (the SDK itself is C++). The SDK
 * only checks the pointer is non-NULL and ignores the contents, so callers just need >= 1 valid byte.
 * We give it one reserved char so C and C++ agree (1 byte) and no code relies on a GNU extension.
 */
typedef struct {
    char reserved;
} ubsmem_options_t;

typedef struct {
    char host_name[MAX_HOST_NAME_DESC_LENGTH];
    bool affinity;
} ubsmem_region_node_desc_t;

typedef struct {
    int host_num;
    ubsmem_region_node_desc_t hosts[MAX_REGION_NODE_NUM];
} ubsmem_region_attributes_t;

typedef struct {
    char name[MAX_SHM_NAME_LENGTH + 1];
    size_t size;
} ubsmem_shmem_desc_t;

typedef struct {
    char name[MAX_SHM_NAME_LENGTH + 1];
    size_t size;             /* real size: rounded up to the block size */
    uint32_t mem_num;        /* number of memids = size / mem_unit_size */
    uint64_t mem_unit_size;  /* block size (obmm.memory.block.size) */
    uint64_t mem_id_list[MAX_MEMID_NUM]; /* node-local memids = minors of /dev/obmm_shmdev<memid> */
} ubsmem_shmem_info_t;

/* ABI layout checks (LP64; docs/ubs-sdk.md A.2). */
_Static_assert(sizeof(ubsmem_options_t) == 1, "ubsmem_options_t");
_Static_assert(sizeof(ubsmem_region_node_desc_t) == 65, "ubsmem_region_node_desc_t size");
_Static_assert(offsetof(ubsmem_region_node_desc_t, affinity) == 64, "region_node_desc.affinity");
_Static_assert(sizeof(ubsmem_region_attributes_t) == 1044, "ubsmem_region_attributes_t size");
_Static_assert(offsetof(ubsmem_region_attributes_t, hosts) == 4, "region_attributes.hosts");
_Static_assert(sizeof(ubsmem_shmem_desc_t) == 64, "ubsmem_shmem_desc_t size");
_Static_assert(offsetof(ubsmem_shmem_desc_t, size) == 56, "shmem_desc.size");
_Static_assert(sizeof(ubsmem_shmem_info_t) == 16464, "ubsmem_shmem_info_t size");
_Static_assert(offsetof(ubsmem_shmem_info_t, size) == 56, "shmem_info.size");
_Static_assert(offsetof(ubsmem_shmem_info_t, mem_num) == 64, "shmem_info.mem_num");
_Static_assert(offsetof(ubsmem_shmem_info_t, mem_unit_size) == 72, "shmem_info.mem_unit_size");
_Static_assert(offsetof(ubsmem_shmem_info_t, mem_id_list) == 80, "shmem_info.mem_id_list");
_Static_assert(sizeof(mode_t) == 4 && sizeof(off_t) == 8 && sizeof(size_t) == 8, "LP64 scalars");

UBSM_API int ubsmem_init_attributes(ubsmem_options_t *ubsm_shmem_opts);
UBSM_API int ubsmem_initialize(const ubsmem_options_t *ubsm_shmem_opts);
UBSM_API int ubsmem_finalize(void);
UBSM_API int ubsmem_set_logger_level(int level);
UBSM_API int ubsmem_shmem_allocate(const char *region_name, const char *name, size_t size, mode_t mode,
                                   uint64_t flags);
UBSM_API int ubsmem_shmem_deallocate(const char *name);
UBSM_API int ubsmem_shmem_map(void *addr, size_t length, int prot, int flags, const char *name, off_t offset,
                              void **local_ptr);
UBSM_API int ubsmem_shmem_unmap(void *local_ptr, size_t length);
UBSM_API int ubsmem_shmem_lookup(const char *name, ubsmem_shmem_info_t *shm_info);
UBSM_API int ubsmem_shmem_list_lookup(const char *prefix, ubsmem_shmem_desc_t *shm_list, uint32_t *shm_cnt);
UBSM_API int ubsmem_local_nid_query(uint32_t *nid);

#ifdef __cplusplus
}
#endif
#endif

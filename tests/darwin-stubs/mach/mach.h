/*
 * Stub: mirrors MacOSX.sdk <mach/mach.h> and what it includes
 * (mach/vm_statistics.h, mach/host_info.h, mach/mach_init.h,
 * mach/mach_host.h, mach/mach_port.h): the calls, types and constants
 * platform_darwin.c uses.
 */
#ifndef DARWIN_STUB_MACH_MACH_H
#define DARWIN_STUB_MACH_MACH_H
#include <stdint.h>

typedef int		kern_return_t;
typedef unsigned int	natural_t;
typedef int		integer_t;
typedef natural_t	mach_port_t;
typedef natural_t	mach_msg_type_number_t;
typedef uintptr_t	vm_size_t;
typedef integer_t	host_flavor_t;
typedef integer_t	*host_info64_t;

#define KERN_SUCCESS	0
#define HOST_VM_INFO64	4

/* mach/vm_statistics.h */
struct vm_statistics64 {
	natural_t	free_count;	/* # of pages free */
	natural_t	active_count;
	natural_t	inactive_count;
	natural_t	wire_count;
	uint64_t	zero_fill_count;
	uint64_t	reactivations;
	uint64_t	pageins;
	uint64_t	pageouts;
	uint64_t	faults;
	uint64_t	cow_faults;
	uint64_t	lookups;
	uint64_t	hits;
	uint64_t	purges;
	natural_t	purgeable_count;
	/* NB: speculative pages are already accounted for in "free_count" */
	natural_t	speculative_count;
	uint64_t	decompressions;
	uint64_t	compressions;
	uint64_t	swapins;
	uint64_t	swapouts;
	natural_t	compressor_page_count;
	natural_t	throttled_count;
	natural_t	external_page_count;	/* file-backed (non-swap) */
	natural_t	internal_page_count;	/* anonymous */
	uint64_t	total_uncompressed_pages_in_compressor;
} __attribute__((aligned(8)));
typedef struct vm_statistics64	vm_statistics64_data_t;

#define HOST_VM_INFO64_COUNT ((mach_msg_type_number_t)	\
	(sizeof(vm_statistics64_data_t) / sizeof(integer_t)))

mach_port_t	mach_host_self(void);
mach_port_t	mach_task_self(void);
kern_return_t	host_page_size(mach_port_t, vm_size_t *);
kern_return_t	host_statistics64(mach_port_t, host_flavor_t, host_info64_t,
		    mach_msg_type_number_t *);
kern_return_t	mach_port_deallocate(mach_port_t task, mach_port_t name);
#endif

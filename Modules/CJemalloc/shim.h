// jemalloc (Debian: libjemalloc-dev). Linking it into an executable replaces malloc and free for the whole
// process; Swift code only calls mallctl, to report the allocator.
#include <jemalloc/jemalloc.h>

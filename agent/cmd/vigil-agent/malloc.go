//go:build cgo && linux

package main

/*
#include <malloc.h>
#include <stdlib.h>

// glibc gives each thread that allocates its own malloc arena, up to 8 per core. The agent
// calls libavcodec and ONNX Runtime from whichever threads the Go scheduler runs cameras on,
// so every arena ends up holding freed pictures of its own: with 12 cameras that was ~45 MiB
// of resident memory for nothing (docs/BENCHMARKS.md). Two arenas, set before any thread
// allocates; MALLOC_ARENA_MAX in the environment still wins.
__attribute__((constructor)) static void vigil_malloc_arenas(void) {
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
}
*/
import "C"

//go:build cgo && linux

package onnx

/*
#include <malloc.h>
*/
import "C"

// trimHeap hands the C heap's free memory back to the system (glibc's malloc_trim). Opening
// a session allocates and frees several MiB of graph-optimisation memory that glibc would
// otherwise keep for ever.
func trimHeap() { C.malloc_trim(0) }

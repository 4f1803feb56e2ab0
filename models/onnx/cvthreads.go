//go:build cgo

package onnx

/*
#cgo !windows pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include "cvthreads.h"
*/
import "C"

import "os"

// openCVThreadsEnv is OpenCV's own setting for its thread count; when an operator sets it,
// Load leaves OpenCV's threads alone.
const openCVThreadsEnv = "OPENCV_FOR_THREADS_NUM"

// SetOpenCVThreads sets the number of threads OpenCV's parallel loops use, for the whole
// process (OpenCV keeps it global); 1 runs them on the calling thread. Load sets 1 unless
// OPENCV_FOR_THREADS_NUM is set: Debian's OpenCV runs on TBB, whose idle workers keep
// spinning after each parallel resize and starve ONNX Runtime of the cores. Measured on
// 2 cores under load: a whole Detect took 100-1450 ms with OpenCV's default, 18 ms with 1.
func SetOpenCVThreads(n int) { C.vigil_cv_set_num_threads(C.int(n)) }

// OpenCVThreads is OpenCV's current thread count.
func OpenCVThreads() int { return int(C.vigil_cv_get_num_threads()) }

// limitOpenCVThreads applies Load's default.
func limitOpenCVThreads() {
	if os.Getenv(openCVThreadsEnv) == "" {
		SetOpenCVThreads(1)
	}
}

// OpenCV's thread count, which gocv v0.31 does not expose.
#include <opencv2/core/utility.hpp>
#include "cvthreads.h"

extern "C" void vigil_cv_set_num_threads(int n) { cv::setNumThreads(n); }
extern "C" int vigil_cv_get_num_threads(void) { return cv::getNumThreads(); }

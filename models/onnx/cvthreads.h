#ifndef VIGIL_CVTHREADS_H
#define VIGIL_CVTHREADS_H
#ifdef __cplusplus
extern "C" {
#endif
void vigil_cv_set_num_threads(int n);
int vigil_cv_get_num_threads(void);
#ifdef __cplusplus
}
#endif
#endif

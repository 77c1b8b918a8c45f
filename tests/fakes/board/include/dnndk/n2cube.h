/* Declarations of the N2Cube calls the ofa_hw profiler uses, for the fake board (written for ofa_hw). */
#ifndef OFA_HW_FAKE_N2CUBE_H
#define OFA_HW_FAKE_N2CUBE_H

typedef struct fake_dpu_kernel DPUKernel;
typedef struct fake_dpu_task DPUTask;

#define T_MODE_NORMAL 0
#define T_MODE_PROFILE 1
#define T_MODE_DEBUG 2

int dpuOpen(void);
int dpuClose(void);
DPUKernel *dpuLoadKernel(const char *netName);
int dpuDestroyKernel(DPUKernel *kernel);
DPUTask *dpuCreateTask(DPUKernel *kernel, int mode);
int dpuDestroyTask(DPUTask *task);
int dpuRunTask(DPUTask *task);

#endif

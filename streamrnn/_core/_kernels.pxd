# The C helpers of _kernels.h that the network kernels call (_network.pyx, _shared.pyx): one
# declaration for every module that cimports them. Each module includes the header, so each
# holds its own copy of the dispatch pointers and calls sr_select once at import (the
# instruction set _cells chose); see _kernels.h for the copies and why they agree bit for bit.

cdef extern from "_kernels.h":
    # C (d x m) = A^T (d x W, columns of stride lda) @ B (W x m, row stride ldb): the parameter
    # gradients over the window steps, each element summed over the steps in order
    void sr_gemm_tn(Py_ssize_t d, Py_ssize_t m, Py_ssize_t W, const double* A, Py_ssize_t lda,
                    const double* B, Py_ssize_t ldb, double* C) noexcept nogil
    # sr_gemm_tn with A^T given by one row pointer per step (A[s][i]): the same sums, bit for
    # bit, without gathering A transposed first
    void sr_gemm_rows(Py_ssize_t d, Py_ssize_t m, Py_ssize_t W, const double* const* A,
                      const double* B, Py_ssize_t ldb, double* C) noexcept nogil
    # out (d,) = (init or 0) + W (d x m) @ v (m,): the backward's W_h products
    void sr_matvec(Py_ssize_t d, Py_ssize_t m, const double* W, const double* v,
                   const double* init, double* out) noexcept nogil
    # point the helpers at the copy for an instruction set ("default", "avx2", "avx512")
    int sr_select(const char* name) noexcept nogil

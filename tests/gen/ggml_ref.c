// A tiny command-line bridge to ggml's own C code, used by tests/gen/quant_golden.py where
// gguf-py has no reference (Q8_K, Q1_0, Q2_0 dequantization; the CPU backend's activation
// quantizers and dot products). Built and run by that script; never part of sluice.
//
//   ggml_ref dequant TYPE_ID N_BLOCKS   stdin: raw blocks           stdout: f32 values
//   ggml_ref from_float TYPE_ID N       stdin: N f32                stdout: the CPU backend's
//                                                                   from_float (type_traits_cpu)
//   ggml_ref vec_dot TYPE_ID N          stdin: weight row, N f32    stdout: one f32: the CPU
//                                       (activation converted with vec_dot_type's from_float)
//
// Link against libggml-cpu.a and libggml-base.a of a llama.cpp build (see quant_golden.py).

#include "ggml.h"
#include "ggml-cpu.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Exported by ggml-base but not in a public header.
void dequantize_row_q8_K(const void * x, float * y, int64_t k);

static void * read_exact(size_t n) {
    void * buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, stdin) != n) {
        fprintf(stderr, "ggml_ref: short input (wanted %zu bytes)\n", n);
        exit(2);
    }
    return buf;
}

static void write_all(const void * p, size_t n) {
    if (fwrite(p, 1, n, stdout) != n) {
        fprintf(stderr, "ggml_ref: write failed\n");
        exit(2);
    }
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: ggml_ref dequant|from_float|vec_dot TYPE_ID N\n");
        return 2;
    }
    ggml_cpu_init();
    const char * cmd = argv[1];
    const enum ggml_type type = (enum ggml_type) atoi(argv[2]);
    const int64_t n = atoll(argv[3]);
    const struct ggml_type_traits * traits = ggml_get_type_traits(type);
    const struct ggml_type_traits_cpu * cpu = ggml_get_type_traits_cpu(type);

    if (strcmp(cmd, "dequant") == 0) {
        const int64_t elems = n * traits->blck_size;
        void * blocks = read_exact((size_t) n * traits->type_size);
        float * out = malloc(sizeof(float) * (size_t) elems);
        if (type == GGML_TYPE_Q8_K) {
            dequantize_row_q8_K(blocks, out, elems);
        } else if (traits->to_float) {
            traits->to_float(blocks, out, elems);
        } else {
            fprintf(stderr, "ggml_ref: no dequantizer for %s\n", traits->type_name);
            return 3;
        }
        write_all(out, sizeof(float) * (size_t) elems);
    } else if (strcmp(cmd, "from_float") == 0) {
        float * x = read_exact(sizeof(float) * (size_t) n);
        const size_t bytes = ggml_row_size(type, n);
        void * out = calloc(1, bytes);
        if (!cpu->from_float) {
            fprintf(stderr, "ggml_ref: no from_float for %s\n", traits->type_name);
            return 3;
        }
        cpu->from_float(x, out, n);
        write_all(out, bytes);
    } else if (strcmp(cmd, "vec_dot") == 0) {
        const enum ggml_type act = cpu->vec_dot_type;
        void * w = read_exact(ggml_row_size(type, n));
        float * x = read_exact(sizeof(float) * (size_t) n);
        void * a = calloc(1, ggml_row_size(act, n));
        ggml_get_type_traits_cpu(act)->from_float(x, a, n);
        float s = 0.0f;
        cpu->vec_dot((int) n, &s, 0, w, 0, a, 0, 1);
        write_all(&s, sizeof s);
    } else {
        fprintf(stderr, "ggml_ref: unknown command %s\n", cmd);
        return 2;
    }
    return 0;
}

// llama_ref: a small driver over llama.h that produces the reference outputs the sluice
// forward-pass tests compare against. Built by tests/gen/make_fixtures.py against the static
// libraries of the pinned llama.cpp build (see tests/reference/llama-cpp.sh).
//
// Usage (all results go to stdout as one JSON object, logits to a file):
//   llama_ref info
//   llama_ref tokenize MODEL TEXT          (add_special and parse_special on)
//   llama_ref detokenize MODEL 12,34,...  (special tokens rendered)
//   llama_ref logits   MODEL OUT.f32 [options] --tokens 0,12,34,...
//   llama_ref greedy   MODEL [options] --tokens 0,12,34,... --n-predict 32
//   llama_ref route    MODEL OUT.bin [options] --tokens ...
// Options: --fa on|off|auto  --ctk TYPE  --ctv TYPE  --threads N  --ctx N
//          --extra-bufts on|off (weight repacking / AMX buffers; default off, see load_model)
//
// logits: decodes the whole token list as ONE batch with logits requested at every position
//         and writes them as little-endian f32, row-major [n_tokens][n_vocab].
// greedy: decodes the prompt as one batch, then n_predict steps of one token each; the next
//         token is the arg-max of the last logits (the first maximum on ties). End-of-generation
//         tokens do not stop the loop. Reports ids, the top-1 minus top-2 logit gap and the five
//         largest logits (ids and values) per step.
// route:  like logits, and records for every MoE layer the gate probabilities
//         ("ffn_moe_probs-L", [n_tokens][n_expert] f32) and the chosen experts
//         ("ffn_moe_topk-L", [n_tokens][k] i32) through the graph evaluation callback.
//         File layout: repeated records {u32 name_len, name bytes, u32 type (0 f32, 1 i32),
//         u32 ne0, u32 ne1, data}.

#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
    std::string fa = "auto";
    std::string ctk = "f16";
    std::string ctv = "f16";
    int threads = 2;
    int ctx = 0;
    int n_predict = 32;
    std::vector<llama_token> tokens;
};

// Weight repacking / AMX buffers are off unless asked for: they make results depend on the CPU
// (AMX tiles exist only on some x86 parts) and, on AMX machines, they break 3-D F16 MLA
// weights (attn_k_b/attn_v_b) at context creation in this llama.cpp version.
bool g_extra_bufts = false;

[[noreturn]] void fail(const std::string & msg) {
    fprintf(stderr, "llama_ref: %s\n", msg.c_str());
    exit(1);
}

ggml_type cache_type_from_name(const std::string & name) {
    static const struct { const char * name; ggml_type type; } table[] = {
        {"f32", GGML_TYPE_F32},   {"f16", GGML_TYPE_F16},       {"bf16", GGML_TYPE_BF16},
        {"q8_0", GGML_TYPE_Q8_0}, {"q4_0", GGML_TYPE_Q4_0},     {"q4_1", GGML_TYPE_Q4_1},
        {"q5_0", GGML_TYPE_Q5_0}, {"q5_1", GGML_TYPE_Q5_1},     {"iq4_nl", GGML_TYPE_IQ4_NL},
    };
    for (const auto & entry : table) {
        if (name == entry.name) {
            return entry.type;
        }
    }
    fail("unknown cache type " + name);
}

llama_flash_attn_type flash_attn_from_name(const std::string & name) {
    if (name == "on") return LLAMA_FLASH_ATTN_TYPE_ENABLED;
    if (name == "off") return LLAMA_FLASH_ATTN_TYPE_DISABLED;
    if (name == "auto") return LLAMA_FLASH_ATTN_TYPE_AUTO;
    fail("--fa must be on, off or auto, got " + name);
}

std::vector<llama_token> parse_token_list(const std::string & text) {
    std::vector<llama_token> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        out.push_back((llama_token) std::stol(text.substr(start, end - start)));
        start = end + 1;
    }
    return out;
}

Options parse_options(int argc, char ** argv, int first) {
    Options opt;
    for (int i = first; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) fail("missing value after " + arg);
        const std::string value = argv[++i];
        if (arg == "--fa") opt.fa = value;
        else if (arg == "--ctk") opt.ctk = value;
        else if (arg == "--ctv") opt.ctv = value;
        else if (arg == "--threads") opt.threads = std::atoi(value.c_str());
        else if (arg == "--ctx") opt.ctx = std::atoi(value.c_str());
        else if (arg == "--n-predict") opt.n_predict = std::atoi(value.c_str());
        else if (arg == "--tokens") opt.tokens = parse_token_list(value);
        else if (arg == "--extra-bufts") g_extra_bufts = value == "on";
        else fail("unknown option " + arg);
    }
    return opt;
}

void quiet_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

llama_model * load_model(const char * path) {
    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = 0;
    params.use_extra_bufts = g_extra_bufts;
    llama_model * model = llama_model_load_from_file(path, params);
    if (!model) fail(std::string("cannot load model ") + path);
    return model;
}

// Records the MoE routing tensors of every layer as they are computed.
struct RouteRecorder {
    FILE * out = nullptr;

    // exactly "<prefix><layer digits>"; views such as "ffn_moe_probs-1 (reshaped)" are skipped
    static bool has_layer_suffix(const char * name, const char * prefix) {
        const size_t n = strlen(prefix);
        if (strncmp(name, prefix, n) != 0 || name[n] == 0) return false;
        for (const char * c = name + n; *c; ++c) {
            if (*c < '0' || *c > '9') return false;
        }
        return true;
    }

    static bool wanted(const char * name) {
        return has_layer_suffix(name, "ffn_moe_probs-") || has_layer_suffix(name, "ffn_moe_topk-");
    }

    static bool callback(ggml_tensor * t, bool ask, void * user_data) {
        if (ask) {
            return wanted(t->name);
        }
        auto * self = static_cast<RouteRecorder *>(user_data);
        if (!wanted(t->name)) {
            return true;
        }
        if (t->type != GGML_TYPE_F32 && t->type != GGML_TYPE_I32) fail("unexpected routing tensor type");
        const uint32_t ne0 = (uint32_t) t->ne[0];
        const uint32_t ne1 = (uint32_t) (t->ne[1] * t->ne[2] * t->ne[3]);
        // ffn_moe_topk is a view (the first k columns of an argsort), so copy row by row
        if (t->ne[2] != 1 || t->ne[3] != 1 || t->nb[0] != 4) fail(std::string("unexpected layout of ") + t->name);
        const size_t row_bytes = (size_t) ne0 * 4;
        std::vector<char> data(row_bytes * ne1);
        for (uint32_t row = 0; row < ne1; ++row) {
            ggml_backend_tensor_get(t, data.data() + row * row_bytes, row * t->nb[1], row_bytes);
        }
        const uint32_t name_len = (uint32_t) strlen(t->name);
        const uint32_t type = t->type == GGML_TYPE_F32 ? 0 : 1;
        fwrite(&name_len, 4, 1, self->out);
        fwrite(t->name, 1, name_len, self->out);
        fwrite(&type, 4, 1, self->out);
        fwrite(&ne0, 4, 1, self->out);
        fwrite(&ne1, 4, 1, self->out);
        fwrite(data.data(), 1, data.size(), self->out);
        return true;
    }
};

llama_context * make_context(llama_model * model, const Options & opt, RouteRecorder * recorder) {
    llama_context_params params = llama_context_default_params();
    const int n_needed = (int) opt.tokens.size() + opt.n_predict + 8;
    params.n_ctx = opt.ctx > 0 ? opt.ctx : (uint32_t) ((n_needed + 255) / 256 * 256);
    params.n_batch = params.n_ctx;
    params.n_ubatch = params.n_ctx;
    params.n_seq_max = 1;
    params.n_threads = opt.threads;
    params.n_threads_batch = opt.threads;
    params.flash_attn_type = flash_attn_from_name(opt.fa);
    params.type_k = cache_type_from_name(opt.ctk);
    params.type_v = cache_type_from_name(opt.ctv);
    params.no_perf = true;
    if (recorder) {
        params.cb_eval = RouteRecorder::callback;
        params.cb_eval_user_data = recorder;
    }
    llama_context * ctx = llama_init_from_model(model, params);
    if (!ctx) fail("cannot create the context (cache " + opt.ctk + "/" + opt.ctv + ", fa " + opt.fa + ")");
    return ctx;
}

// Decodes `tokens` at positions [pos0, pos0 + n) as one batch; logits at every position when
// `all_logits`, else only at the last one.
void decode(llama_context * ctx, const std::vector<llama_token> & tokens, int pos0, bool all_logits) {
    llama_batch batch = llama_batch_init((int32_t) tokens.size(), 0, 1);
    for (size_t i = 0; i < tokens.size(); ++i) {
        batch.token[i] = tokens[i];
        batch.pos[i] = pos0 + (llama_pos) i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = all_logits || i + 1 == tokens.size();
    }
    batch.n_tokens = (int32_t) tokens.size();
    const int rc = llama_decode(ctx, batch);
    llama_batch_free(batch);
    if (rc != 0) fail("llama_decode failed with code " + std::to_string(rc));
}

struct TopTwo {
    int best = -1;
    float gap = 0.0f;
};

TopTwo top_two(const float * logits, int n_vocab) {
    TopTwo result;
    float first = -INFINITY, second = -INFINITY;
    for (int i = 0; i < n_vocab; ++i) {
        if (logits[i] > first) {
            second = first;
            first = logits[i];
            result.best = i;
        } else if (logits[i] > second) {
            second = logits[i];
        }
    }
    result.gap = first - second;
    return result;
}

// The n largest logits, largest first; equal logits keep ascending id order.
std::vector<std::pair<float, int>> top_n(const float * logits, int n_vocab, int n) {
    std::vector<std::pair<float, int>> all(n_vocab);
    for (int i = 0; i < n_vocab; ++i) all[i] = {logits[i], i};
    n = std::min(n, n_vocab);
    std::partial_sort(all.begin(), all.begin() + n, all.end(), [](const auto & a, const auto & b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    all.resize(n);
    return all;
}

void print_json_string(const std::string & s) {
    putchar('"');
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int cmd_tokenize(const char * model_path, const std::string & text) {
    llama_model * model = load_model(model_path);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::vector<llama_token> ids(text.size() + 16);
    const int n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(), true, true);
    if (n < 0) fail("tokenization overflow");
    printf("{\"ids\":[");
    for (int i = 0; i < n; ++i) printf(i ? ",%d" : "%d", ids[i]);
    printf("]}\n");
    llama_model_free(model);
    return 0;
}

int cmd_detokenize(const char * model_path, const std::string & ids_text) {
    llama_model * model = load_model(model_path);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const std::vector<llama_token> ids = parse_token_list(ids_text);
    std::vector<char> text(64 + ids.size() * 64);
    const int n = llama_detokenize(vocab, ids.data(), (int32_t) ids.size(), text.data(),
                                   (int32_t) text.size(), false, true);
    if (n < 0) fail("detokenization overflow");
    printf("{\"text\":");
    print_json_string(std::string(text.data(), n));
    printf("}\n");
    llama_model_free(model);
    return 0;
}

int cmd_logits(const char * model_path, const char * out_path, const Options & opt, bool route) {
    llama_model * model = load_model(model_path);
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    RouteRecorder recorder;
    if (route) {
        recorder.out = fopen(out_path, "wb");
        if (!recorder.out) fail(std::string("cannot write ") + out_path);
    }
    llama_context * ctx = make_context(model, opt, route ? &recorder : nullptr);
    decode(ctx, opt.tokens, 0, true);
    if (route) {
        fclose(recorder.out);
    } else {
        FILE * out = fopen(out_path, "wb");
        if (!out) fail(std::string("cannot write ") + out_path);
        for (size_t i = 0; i < opt.tokens.size(); ++i) {
            fwrite(llama_get_logits_ith(ctx, (int32_t) i), sizeof(float), n_vocab, out);
        }
        fclose(out);
    }
    printf("{\"n_tokens\":%zu,\"n_vocab\":%d}\n", opt.tokens.size(), n_vocab);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int cmd_greedy(const char * model_path, const Options & opt) {
    llama_model * model = load_model(model_path);
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_context * ctx = make_context(model, opt, nullptr);
    decode(ctx, opt.tokens, 0, false);
    std::vector<int> ids;
    std::vector<float> gaps;
    std::vector<std::vector<std::pair<float, int>>> tops;
    int pos = (int) opt.tokens.size();
    for (int step = 0; step < opt.n_predict; ++step) {
        const float * logits = llama_get_logits_ith(ctx, -1);
        const TopTwo top = top_two(logits, n_vocab);
        ids.push_back(top.best);
        gaps.push_back(top.gap);
        tops.push_back(top_n(logits, n_vocab, 5));
        if (step + 1 < opt.n_predict) {
            decode(ctx, {top.best}, pos++, false);
        }
    }
    printf("{\"ids\":[");
    for (size_t i = 0; i < ids.size(); ++i) printf(i ? ",%d" : "%d", ids[i]);
    printf("],\"gaps\":[");
    for (size_t i = 0; i < gaps.size(); ++i) printf(i ? ",%.9g" : "%.9g", gaps[i]);
    printf("],\"top5_ids\":[");
    for (size_t i = 0; i < tops.size(); ++i) {
        printf(i ? ",[" : "[");
        for (size_t j = 0; j < tops[i].size(); ++j) printf(j ? ",%d" : "%d", tops[i][j].second);
        printf("]");
    }
    printf("],\"top5_logits\":[");
    for (size_t i = 0; i < tops.size(); ++i) {
        printf(i ? ",[" : "[");
        for (size_t j = 0; j < tops[i].size(); ++j) printf(j ? ",%.9g" : "%.9g", tops[i][j].first);
        printf("]");
    }
    printf("]}\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) fail("usage: llama_ref info | tokenize | logits | greedy | route ...");
    const std::string cmd = argv[1];
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    int rc = 0;
    if (cmd == "info") {
        printf("{\"system_info\":");
        print_json_string(llama_print_system_info());
        printf("}\n");
    } else if (cmd == "detokenize" && argc == 4) {
        rc = cmd_detokenize(argv[2], argv[3]);
    } else if (cmd == "tokenize" && argc == 4) {
        rc = cmd_tokenize(argv[2], argv[3]);
    } else if ((cmd == "logits" || cmd == "route") && argc >= 4) {
        rc = cmd_logits(argv[2], argv[3], parse_options(argc, argv, 4), cmd == "route");
    } else if (cmd == "greedy" && argc >= 3) {
        rc = cmd_greedy(argv[2], parse_options(argc, argv, 3));
    } else {
        fail("bad command line");
    }
    llama_backend_free();
    return rc;
}

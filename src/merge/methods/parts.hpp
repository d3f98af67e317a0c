// Internal: the parts the method objects are built from (mergekit's layout: one class per method,
// shared parts). Parameter declarations that several methods share, the members' weights, the
// DARE drop, TIES consensus and the λ scaling with Subspace Boosting.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "../kernels.hpp"
#include "mergesweep/merge/method.hpp"
#include "mergesweep/merge/request.hpp"

namespace ms::merge::parts {

ParamDef num(const char* name, const char* def, double lo, double hi, const char* help, bool lo_excl = false);
ParamDef integer(const char* name, const char* def, double lo, double hi, const char* help);
ParamDef flag(const char* name, const char* def, const char* help);
ParamDef choice(const char* name, const char* def, std::vector<std::string> choices, const char* help);
ParamDef lambda();      // θ₀ + λ·τ
ParamDef seed();        // the random methods' seed
ParamDef rescale();     // DARE's rescale of kept entries
ParamDef alpha();       // SVD methods' scale
ParamDef beta();        // Subspace Boosting's boosted share
ParamDef sb_order();    // Subspace Boosting's order
ParamDef trim();        // TIES's trim: per tensor or global
ParamDef normalize(const char* def, const char* help);

// Each member's weight (1 for methods without per-model weights).
std::vector<double> weights_of(const MergeRequest& r);

// A fused kernel's inputs as stored spans (each at its own dtype): θ₀, and the members.
kernels::StoredSpan base_span(const FusedCall& c);
std::vector<kernels::StoredSpan> member_spans(const FusedCall& c);
// Copies a streaming kernel's statistics into the fused call's result; true.
bool report(const kernels::StreamStats& st, FusedResult& res);

// DARE: each member's τ with entries dropped with probability 1 − density (the counter-based mask
// of dare_keep_mask, or the test hook's), rescaled as the request's `rescale` says.
std::vector<at::Tensor> dare(const TensorInputs& in);

// TIES trim (per tensor top-k, or the global threshold) and consensus.
kernels::Parts ties_parts(const TensorInputs& in);

// λ · merged task vector, boosted when `boost` (Subspace Boosting) in the order the request names.
at::Tensor scaled_delta(const MergeRequest& r, const std::string& name, const kernels::Parts& parts, bool boost);

// The form shared by mergekit's generalized task arithmetic methods: lambda and normalize.
MergekitForm task_arithmetic_form(const MergeRequest& r);

// mergekit's RescaleNorm.l1 (breadcrumbs, DELLA): `masked` scaled so its L1 norm is τ's, left as it
// is when either norm is below 1e-7; float32 sums and a float32 ratio, as mergekit computes them.
at::Tensor l1_rescaled(const at::Tensor& tau, const at::Tensor& masked);
// The rest of mergekit's generalized task arithmetic once each τ is sparsified: a weighted sum, or
// TIES's sign consensus when `consensus`; ÷ the (agreeing) weights when normalize; × λ; θ₀ + that.
at::Tensor generalized_task_arithmetic(const TensorInputs& in, const std::vector<at::Tensor>& sparse, bool consensus);

}  // namespace ms::merge::parts

namespace ms::merge::methods {
// Every method, in registration order (all.cpp).
std::vector<std::unique_ptr<Method>> make_all();
// One factory per method.
std::unique_ptr<Method> linear();
std::unique_ptr<Method> slerp();
std::unique_ptr<Method> task_arithmetic();
std::unique_ptr<Method> ties();
std::unique_ptr<Method> dare_ties();
std::unique_ptr<Method> dare_linear();
std::unique_ptr<Method> model_stock();
std::unique_ptr<Method> tsv_m();
std::unique_ptr<Method> iso_c();
std::unique_ptr<Method> iso_cts();
std::unique_ptr<Method> task_arithmetic_sb();
std::unique_ptr<Method> ties_sb();
std::unique_ptr<Method> breadcrumbs();
std::unique_ptr<Method> breadcrumbs_ties();
std::unique_ptr<Method> sce();
std::unique_ptr<Method> della();
std::unique_ptr<Method> della_linear();
std::unique_ptr<Method> nuslerp();
std::unique_ptr<Method> multislerp();
std::unique_ptr<Method> karcher();
std::unique_ptr<Method> nearswap();
std::unique_ptr<Method> arcee_fusion();
std::unique_ptr<Method> ram();
std::unique_ptr<Method> ramplus_tl();
std::unique_ptr<Method> passthrough();
}  // namespace ms::merge::methods

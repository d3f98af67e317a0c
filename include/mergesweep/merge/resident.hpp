// Resident models for sweeps: θ₀ and every θᵢ loaded once and kept in memory on one device
// (possibly only the tensors this rank holds), so that each merge is pure compute.
//
// They stay in their file dtype (bfloat16 for real models): memory is (K+1)·B, not (K+1)·2B as
// float32 task vectors would need. Task vectors are formed per tensor when a merge reads them,
// τᵢ = float32(θᵢ) − float32(θ₀): both widenings and the float32 subtraction are exact functions of
// the stored bits, so every merge is bitwise what a float32-resident τ gives (Residency::
// Float32TaskVectors keeps that older layout for comparison: tests and the bench).
//
// A LoRA adapter that io::check_family marks factored is held as its A and B (on the CPU) and its
// saved tensors; a tensor it leaves is read from θ₀. A merge, baseline or τ that reads one of its
// tensors forms it with io::fold_lora_into (the function that writes the folded folder) into a
// float32 fold slot, one per factored member of the request, so every number is the densified
// adapter's bit for bit (docs/checkpoints.md, "Adapters stay factored in a sweep").
#pragma once

#include <c10/core/Device.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mergesweep/io/vocabulary.hpp"
#include "mergesweep/merge/merge.hpp"

namespace at { class Tensor; }

namespace ms::merge {

enum class Residency {
  FileDtype,           // θ₀ and θᵢ as stored; τ formed per tensor at merge time (the sweep's layout)
  Float32TaskVectors,  // θ₀ and τᵢ in float32, formed at load (2× the memory of bf16 checkpoints)
};

struct ResidentOptions {
  c10::Device device = c10::Device(c10::DeviceType::CPU);
  Residency residency = Residency::FileDtype;
  // Task arithmetic and per-tensor TIES on CPU tensors run fused raw-pointer kernels. Off, they
  // take the device-generic path a GPU runs (tests compare the two on the CPU).
  bool cpu_fast_paths = true;
  // Checkpoints of another vocabulary: the sweep aligns them to the base's (io/vocabulary.hpp).
  io::VocabChoice vocab;
};

// Receives each merged tensor (float32, on the resident device) once; the tensor may be a view
// of a workspace that the next call overwrites, so copy what must outlive the call.
using MergedTensorSink = std::function<void(const std::string& name, const at::Tensor& merged)>;

class ResidentModels {
 public:
  // Reads `names` (all of the base's tensors when empty) from the base and every checkpoint.
  // Checkpoint k is addressed by Member::index == k in requests.
  ResidentModels(const std::string& base_path, const std::vector<std::string>& checkpoint_paths,
                 std::vector<std::string> names = {}, ResidentOptions options = {});
  // Holds tensors made in memory (the benchmarks' random models, made on the device: no files),
  // as they are: already on options.device, in the dtype to hold them in, every checkpoint with
  // the base's names and shapes. Tensors are held in name order.
  ResidentModels(std::map<std::string, at::Tensor> base, std::vector<std::map<std::string, at::Tensor>> checkpoints,
                 ResidentOptions options = {});
  ~ResidentModels();
  ResidentModels(ResidentModels&&) noexcept;

  const std::vector<std::string>& tensor_names() const;
  std::size_t num_checkpoints() const;
  c10::Device device() const;
  // θ₀ in float32 (the held tensor itself when it is float32 already: read it, never write it).
  at::Tensor base(const std::string& name) const;
  // θ₀ as held: the file dtype (float32 under Float32TaskVectors), no copy. Read it, never write it.
  const at::Tensor& held_base(const std::string& name) const;
  // τ = float32(θ_checkpoint) − float32(θ₀), a fresh float32 tensor (the held one under
  // Float32TaskVectors: read it, never write it).
  at::Tensor tau(std::size_t checkpoint, const std::string& name) const;
  // The baselines: θ₀ (checkpoint < 0) or θ₀ + τ_checkpoint (a checkpoint as every merge sees
  // it) of every held tensor in float32, handed to `sink` in name order like merge_each, formed
  // in the workspace (no float32 copy beyond it on a GPU; the CPU widens θ₀ once for the sum).
  void baseline_each(std::int64_t checkpoint, const MergedTensorSink& sink) const;
  // Bytes held: every resident tensor in the dtype it is held in.
  std::uint64_t resident_bytes() const;

  // Merges every held tensor, handing each to `sink` in name order. Whole-model statistics go
  // through `reducer` (a collective over the ranks holding the other tensors). Not reentrant:
  // one workspace (the size of the largest tensor merged through it) is reused by every call,
  // also as a TIES trim rule's scratch; the trim-rule cache alone is guarded by a mutex.
  void merge_each(const MergeRequest& r, Reducer& reducer, const MergedTensorSink& sink,
                  const DareMaskFn* dare_mask = nullptr) const;
  // The same, into `out` (float32; entries are reused when present with the right shape, so a
  // caller that keeps `out` between calls does not reallocate the output).
  void merge(const MergeRequest& r, std::map<std::string, at::Tensor>& out, Reducer& reducer,
             const DareMaskFn* dare_mask = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ms::merge

// safetensors read/write (https://github.com/huggingface/safetensors, format rules):
//   8 bytes little-endian u64 N, N bytes of UTF-8 JSON header, then the data.
//   header: {"name": {"dtype": "F32"|"BF16"|"F16", "shape": [..], "data_offsets": [begin, end]},
//            "__metadata__": {str: str}}; offsets are relative to the data start.
// Reads are memory-mapped and validated (header size bound, JSON well-formed, known dtypes,
// shape x dtype size == byte length, offsets inside the file, no overlapping tensors).
// Writes are atomic: temp file in the same directory, fsync, rename, fsync of the directory.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "common.h"

namespace itool {

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // absolute byte offsets in the file
  int64_t numel() const {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    return n;
  }
};

// One memory-mapped, validated safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // throws Error naming the file and the problem
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* find(const std::string& name) const;
  const uint8_t* data(const SafetensorsEntry& e) const { return base_ + e.begin; }
  // Converts the tensor's elements to f32 into out[numel].
  void read_f32(const SafetensorsEntry& e, float* out) const;
  // Gives back the mapped pages of a tensor already read (they leave the process's resident
  // set; reading it again maps them in again).
  void release(const SafetensorsEntry& e) const;

 private:
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates a safetensors image already in memory (used by SafetensorsFile).
void parse_safetensors(const uint8_t* data, size_t size, const std::string& what,
                       std::vector<SafetensorsEntry>& entries, std::map<std::string, std::string>& metadata);

struct SafetensorsWriteItem {
  std::string name;
  DType dtype = DType::F32;  // stored dtype (F32, BF16 or F16)
  std::vector<int64_t> shape;
  const float* data = nullptr;  // f32 host values, converted on write when dtype != F32
  const uint16_t* raw16 = nullptr;  // or raw bf16/f16 bits (exclusive with data)
  const uint16_t* bf16 = nullptr;   // or bf16 host values, written as `dtype` (converted a chunk at a time)
  // or a function that fills out[numel] with the f32 values when the tensor is written (the
  // writer holds one tensor's buffer at a time: a model is streamed, never copied whole)
  std::function<void(float* out)> fill;
};

// Writes a safetensors file atomically. Tensors are written in the given order.
void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                       const std::map<std::string, std::string>& metadata);

// Writes a small text file atomically (temp, fsync, rename).
void write_file_atomic(const std::string& path, const std::string& content);

// The shards of a checkpoint directory: model.safetensors, or the files named by
// model.safetensors.index.json's weight_map (deduplicated, in first-seen order).
std::vector<std::string> checkpoint_shards(const std::string& dir);

// Minimal JSON value used for safetensors headers and index files.
struct JsonValue {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  bool is_int = false;
  int64_t i = 0;
  std::string str;
  std::vector<JsonValue> arr;
  std::vector<std::pair<std::string, JsonValue>> obj;
  const JsonValue* get(const std::string& k) const;
};
// Throws Error("<what>: invalid JSON at byte N: ...").
JsonValue parse_json(const char* s, size_t n, const std::string& what);

}  // namespace itool

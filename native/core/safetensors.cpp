// safetensors read/write: see safetensors.h for the rules checked.
#include "safetensors.h"
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace itool {

// ------------------------------------------------------------------ JSON
const JsonValue* JsonValue::get(const std::string& k) const {
  if (kind != Object) return nullptr;
  for (auto& kv : obj)
    if (kv.first == k) return &kv.second;
  return nullptr;
}

namespace {
struct JsonParser {
  const char* s;
  size_t n, p = 0;
  const std::string& what;
  [[noreturn]] void fail(const std::string& m) {
    throw_error(what + ": invalid JSON at byte " + std::to_string(p) + ": " + m);
  }
  void ws() {
    while (p < n && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r')) ++p;
  }
  bool lit(const char* w) {
    size_t l = std::strlen(w);
    if (p + l <= n && std::memcmp(s + p, w, l) == 0) {
      p += l;
      return true;
    }
    return false;
  }
  static void utf8(std::string& o, uint32_t c) {
    if (c < 0x80) o += char(c);
    else if (c < 0x800) { o += char(0xC0 | (c >> 6)); o += char(0x80 | (c & 0x3F)); }
    else if (c < 0x10000) { o += char(0xE0 | (c >> 12)); o += char(0x80 | ((c >> 6) & 0x3F)); o += char(0x80 | (c & 0x3F)); }
    else { o += char(0xF0 | (c >> 18)); o += char(0x80 | ((c >> 12) & 0x3F)); o += char(0x80 | ((c >> 6) & 0x3F)); o += char(0x80 | (c & 0x3F)); }
  }
  uint32_t hex4() {
    if (p + 4 > n) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s[p++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    if (p >= n || s[p] != '"') fail("expected a string");
    ++p;
    std::string o;
    while (true) {
      if (p >= n) fail("unterminated string");
      char c = s[p++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { o += c; continue; }
      if (p >= n) fail("unterminated escape");
      char e = s[p++];
      switch (e) {
        case '"': o += '"'; break;
        case '\\': o += '\\'; break;
        case '/': o += '/'; break;
        case 'b': o += '\b'; break;
        case 'f': o += '\f'; break;
        case 'n': o += '\n'; break;
        case 'r': o += '\r'; break;
        case 't': o += '\t'; break;
        case 'u': {
          uint32_t c1 = hex4();
          if (c1 >= 0xD800 && c1 < 0xDC00) {
            if (!(p + 2 <= n && s[p] == '\\' && s[p + 1] == 'u')) fail("lone surrogate");
            p += 2;
            uint32_t c2 = hex4();
            if (c2 < 0xDC00 || c2 >= 0xE000) fail("bad surrogate pair");
            c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
          } else if (c1 >= 0xDC00 && c1 < 0xE000) {
            fail("lone surrogate");
          }
          utf8(o, c1);
          break;
        }
        default: fail(std::string("bad escape \\") + e);
      }
    }
    return o;
  }
  JsonValue value(int depth) {
    if (depth > 64) fail("nested too deeply");
    ws();
    if (p >= n) fail("unexpected end");
    JsonValue v;
    char c = s[p];
    if (c == '{') {
      v.kind = JsonValue::Object;
      ++p;
      ws();
      if (p < n && s[p] == '}') { ++p; return v; }
      while (true) {
        ws();
        std::string k = string();
        ws();
        if (p >= n || s[p] != ':') fail("expected ':'");
        ++p;
        JsonValue x = value(depth + 1);
        v.obj.emplace_back(std::move(k), std::move(x));
        ws();
        if (p < n && s[p] == ',') { ++p; continue; }
        if (p < n && s[p] == '}') { ++p; break; }
        fail("expected ',' or '}'");
      }
    } else if (c == '[') {
      v.kind = JsonValue::Array;
      ++p;
      ws();
      if (p < n && s[p] == ']') { ++p; return v; }
      while (true) {
        v.arr.push_back(value(depth + 1));
        ws();
        if (p < n && s[p] == ',') { ++p; continue; }
        if (p < n && s[p] == ']') { ++p; break; }
        fail("expected ',' or ']'");
      }
    } else if (c == '"') {
      v.kind = JsonValue::String;
      v.str = string();
    } else if (lit("true")) { v.kind = JsonValue::Bool; v.b = true; }
    else if (lit("false")) { v.kind = JsonValue::Bool; v.b = false; }
    else if (lit("null")) { v.kind = JsonValue::Null; }
    else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t b = p;
      if (s[p] == '-') ++p;
      bool frac = false;
      while (p < n && ((s[p] >= '0' && s[p] <= '9') || s[p] == '.' || s[p] == 'e' || s[p] == 'E' || s[p] == '+' || s[p] == '-')) {
        if (s[p] == '.' || s[p] == 'e' || s[p] == 'E') frac = true;
        ++p;
      }
      std::string t(s + b, p - b);
      if (t == "-" ) fail("bad number");
      v.kind = JsonValue::Number;
      char* endp = nullptr;
      v.num = std::strtod(t.c_str(), &endp);
      if (!endp || *endp != 0) fail("bad number '" + t + "'");
      if (!frac) {
        errno = 0;
        long long ll = std::strtoll(t.c_str(), &endp, 10);
        if (errno == 0 && endp && *endp == 0) { v.is_int = true; v.i = ll; }
      }
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return v;
  }
};
}  // namespace

JsonValue parse_json(const char* s, size_t n, const std::string& what) {
  JsonParser jp{s, n, 0, what};
  JsonValue v = jp.value(0);
  jp.ws();
  if (jp.p != n) jp.fail("trailing characters");
  return v;
}

// ------------------------------------------------------------------ parse
static bool dtype_from_st(const std::string& s, DType& d) {
  if (s == "F32") { d = DType::F32; return true; }
  if (s == "BF16") { d = DType::BF16; return true; }
  if (s == "F16") { d = DType::F16; return true; }
  return false;
}
static const char* dtype_to_st(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    default: return "?";
  }
}

static constexpr uint64_t kMaxHeader = 100000000;  // the reference implementation's bound

void parse_safetensors(const uint8_t* data, size_t size, const std::string& what,
                       std::vector<SafetensorsEntry>& entries, std::map<std::string, std::string>& metadata) {
  if (size < 8) throw_error(what + ": not a safetensors file: " + std::to_string(size) + " bytes, fewer than the 8-byte header length (truncated?)");
  uint64_t hn = 0;
  for (int i = 7; i >= 0; --i) hn = (hn << 8) | data[i];
  if (hn > kMaxHeader) throw_error(what + ": safetensors header length " + std::to_string(hn) + " exceeds the 100000000-byte bound (corrupt file?)");
  if (hn < 2) throw_error(what + ": safetensors header length " + std::to_string(hn) + " is too small for a JSON object");
  if (8 + hn > size)
    throw_error(what + ": safetensors header length " + std::to_string(hn) + " points past the end of the file (" +
                std::to_string(size) + " bytes; truncated?)");
  const char* hs = reinterpret_cast<const char*>(data + 8);
  if (hs[0] != '{') throw_error(what + ": safetensors header does not start with '{'");
  JsonValue h = parse_json(hs, hn, what + " (safetensors header)");
  if (h.kind != JsonValue::Object) throw_error(what + ": safetensors header is not a JSON object");
  uint64_t data_len = size - 8 - hn;
  uint64_t data_start = 8 + hn;
  entries.clear();
  metadata.clear();
  std::set<std::string> seen;
  for (auto& kv : h.obj) {
    const std::string& name = kv.first;
    const JsonValue& v = kv.second;
    if (!seen.insert(name).second) throw_error(what + ": tensor '" + name + "' appears twice in the header");
    if (name == "__metadata__") {
      if (v.kind != JsonValue::Object) throw_error(what + ": __metadata__ is not an object");
      for (auto& m : v.obj) {
        if (m.second.kind != JsonValue::String) throw_error(what + ": __metadata__ value '" + m.first + "' is not a string");
        metadata[m.first] = m.second.str;
      }
      continue;
    }
    std::string tn = what + ": tensor '" + name + "'";
    if (v.kind != JsonValue::Object) throw_error(tn + ": header entry is not an object");
    const JsonValue* dt = v.get("dtype");
    const JsonValue* sh = v.get("shape");
    const JsonValue* off = v.get("data_offsets");
    if (!dt || dt->kind != JsonValue::String) throw_error(tn + ": missing or non-string 'dtype'");
    if (!sh || sh->kind != JsonValue::Array) throw_error(tn + ": missing or non-array 'shape'");
    if (!off || off->kind != JsonValue::Array || off->arr.size() != 2) throw_error(tn + ": 'data_offsets' must be [begin, end]");
    SafetensorsEntry e;
    e.name = name;
    if (!dtype_from_st(dt->str, e.dtype))
      throw_error(tn + ": dtype '" + dt->str + "' is not supported (F32, BF16, F16 are)");
    if (sh->arr.size() > 8) throw_error(tn + ": shape has more than 8 dimensions");
    uint64_t numel = 1;
    for (auto& d : sh->arr) {
      if (d.kind != JsonValue::Number || !d.is_int || d.i < 0) throw_error(tn + ": shape entries must be non-negative integers");
      if (d.i > (int64_t(1) << 40)) throw_error(tn + ": shape entry " + std::to_string(d.i) + " is too large");
      e.shape.push_back(d.i);
      if (d.i != 0 && numel > (uint64_t(1) << 48) / uint64_t(d.i)) throw_error(tn + ": shape holds too many elements");
      numel *= uint64_t(d.i);
    }
    for (auto& o : off->arr)
      if (o.kind != JsonValue::Number || !o.is_int || o.i < 0) throw_error(tn + ": data_offsets must be non-negative integers");
    uint64_t b = uint64_t(off->arr[0].i), en = uint64_t(off->arr[1].i);
    if (b > en) throw_error(tn + ": data_offsets begin " + std::to_string(b) + " > end " + std::to_string(en));
    if (en > data_len)
      throw_error(tn + ": data_offsets end " + std::to_string(en) + " points past the end of the file (data section holds " +
                  std::to_string(data_len) + " bytes; truncated?)");
    uint64_t want = numel * dtype_size(e.dtype);
    if (en - b != want)
      throw_error(tn + ": " + std::to_string(en - b) + " bytes for shape " + [&] {
        std::string s = "[";
        for (size_t i = 0; i < e.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(e.shape[i]);
        return s + "]";
      }() + " of " + dt->str + " (needs " + std::to_string(want) + ")");
    e.begin = data_start + b;
    e.end = data_start + en;
    entries.push_back(std::move(e));
  }
  std::vector<const SafetensorsEntry*> sorted;
  for (auto& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  uint64_t at = data_start;
  for (auto* e : sorted) {
    if (e->begin < at) throw_error(what + ": tensor '" + e->name + "' overlaps the tensor before it in the data section");
    if (e->begin > at) throw_error(what + ": hole of " + std::to_string(e->begin - at) + " bytes in the data section before tensor '" + e->name + "'");
    at = e->end;
  }
  if (at != size) throw_error(what + ": " + std::to_string(size - at) + " trailing bytes after the last tensor (the data section is not fully indexed)");
}

// ------------------------------------------------------------------ file
SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw_error(path + ": cannot stat (" + std::strerror(e) + ")");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw_error(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) {
    ::close(fd);
    throw_error(path + ": not a safetensors file: the file is empty");
  }
  void* m = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) throw_error(path + ": mmap failed (" + std::strerror(errno) + ")");
  base_ = static_cast<const uint8_t*>(m);
  try {
    parse_safetensors(base_, size_, path, entries_, metadata_);
  } catch (...) {
    ::munmap(const_cast<uint8_t*>(base_), size_);
    base_ = nullptr;
    throw;
  }
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].name] = i;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_) ::munmap(const_cast<uint8_t*>(base_), size_);
}

void SafetensorsFile::release(const SafetensorsEntry& e) const {
  // whole pages inside the tensor only: a neighbour's bytes stay mapped
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  uintptr_t b = (uintptr_t(base_) + e.begin + page - 1) / page * page;
  uintptr_t en = (uintptr_t(base_) + e.end) / page * page;
  if (en > b) ::madvise(reinterpret_cast<void*>(b), en - b, MADV_DONTNEED);
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

void SafetensorsFile::read_f32(const SafetensorsEntry& e, float* out) const {
  const uint8_t* src = data(e);
  int64_t n = e.numel();
  if (n == 0) return;
  switch (e.dtype) {
    case DType::F32: std::memcpy(out, src, size_t(n) * 4); break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    default: throw_error(path_ + ": tensor '" + e.name + "' has an unsupported dtype");
  }
}

// ------------------------------------------------------------------ write
static std::string json_escape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += char(c);
  }
  return o + "\"";
}

namespace {
struct TempFile {
  std::string tmp, path;
  int fd = -1;
  bool done = false;
  explicit TempFile(const std::string& p) : path(p) {
    static std::atomic<uint64_t> counter{0};
    tmp = p + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_error(path + ": cannot create temporary file " + tmp + " (" + std::strerror(errno) + ")");
  }
  void write(const void* buf, size_t n) {
    const char* c = static_cast<const char*>(buf);
    while (n > 0) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw_error(path + ": write failed (" + std::strerror(errno) + ")");
      }
      c += w;
      n -= size_t(w);
    }
  }
  void commit() {
    if (::fsync(fd) != 0) throw_error(path + ": fsync failed (" + std::strerror(errno) + ")");
    if (::close(fd) != 0) { fd = -1; throw_error(path + ": close failed (" + std::strerror(errno) + ")"); }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw_error(path + ": rename failed (" + std::strerror(errno) + ")");
    done = true;
    std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
    if (dir.empty()) dir = path.find('/') == 0 ? "/" : ".";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!done) ::unlink(tmp.c_str());
  }
};
}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  TempFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsWriteItem>& items,
                       const std::map<std::string, std::string>& metadata) {
  std::string h = "{";
  bool first = true;
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool f2 = true;
    for (auto& kv : metadata) {
      h += (f2 ? "" : ",") + json_escape(kv.first) + ":" + json_escape(kv.second);
      f2 = false;
    }
    h += "}";
    first = false;
  }
  uint64_t off = 0;
  std::set<std::string> names;
  for (auto& it : items) {
    if (it.dtype != DType::F32 && it.dtype != DType::BF16 && it.dtype != DType::F16)
      throw_type("write_safetensors: tensor '" + it.name + "' has an unsupported dtype");
    if (!names.insert(it.name).second) throw_error("write_safetensors: tensor '" + it.name + "' given twice");
    int64_t n = 1;
    for (auto s : it.shape) n *= s;
    uint64_t bytes = uint64_t(n) * dtype_size(it.dtype);
    h += (first ? "" : ",") + json_escape(it.name) + ":{\"dtype\":\"" + dtype_to_st(it.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < it.shape.size(); ++i) h += (i ? "," : "") + std::to_string(it.shape[i]);
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + bytes) + "]}";
    off += bytes;
    first = false;
  }
  h += "}";
  while (h.size() % 8) h += ' ';
  TempFile f(path);
  uint8_t len[8];
  uint64_t hn = h.size();
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(hn >> (8 * i));
  f.write(len, 8);
  f.write(h.data(), h.size());
  // conversions go through buffers of at most kChunk values: a large tensor is never copied whole
  const int64_t kChunk = int64_t(1) << 20;
  std::vector<uint16_t> buf;
  std::vector<float> wide, vals;  // a chunk widened from bf16; one tensor's values from a fill function
  for (auto& it : items) {
    int64_t n = 1;
    for (auto s : it.shape) n *= s;
    if (n == 0) continue;
    if (it.raw16 && it.dtype != DType::F32) {
      f.write(it.raw16, size_t(n) * 2);
      continue;
    }
    if (it.bf16 && it.dtype == DType::BF16) {
      f.write(it.bf16, size_t(n) * 2);
      continue;
    }
    const float* data = it.data;
    if (!data && !it.bf16 && it.fill) {
      vals.resize(size_t(n));
      it.fill(vals.data());
      data = vals.data();
    }
    if (!data && !it.bf16) throw_error("write_safetensors: tensor '" + it.name + "' has no data");
    for (int64_t c0 = 0; c0 < n; c0 += kChunk) {
      const int64_t m = std::min(kChunk, n - c0);
      const float* src = data ? data + c0 : nullptr;
      if (!src) {
        wide.resize(size_t(m));
        for (int64_t i = 0; i < m; ++i) wide[size_t(i)] = bf16_to_f32(it.bf16[c0 + i]);
        src = wide.data();
      }
      if (it.dtype == DType::F32) {
        f.write(src, size_t(m) * 4);
      } else {
        buf.resize(size_t(m));
        for (int64_t i = 0; i < m; ++i) buf[size_t(i)] = it.dtype == DType::BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
        f.write(buf.data(), size_t(m) * 2);
      }
    }
  }
  f.commit();
}

// ------------------------------------------------------------------ shards
static bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> checkpoint_shards(const std::string& dir) {
  std::string idx = dir + "/model.safetensors.index.json";
  if (file_exists(idx)) {
    std::ifstream in(idx, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    JsonValue v = parse_json(s.data(), s.size(), idx);
    const JsonValue* wm = v.get("weight_map");
    if (!wm || wm->kind != JsonValue::Object) throw_error(idx + ": no 'weight_map' object");
    std::vector<std::string> files;
    std::set<std::string> seen;
    for (auto& kv : wm->obj) {
      if (kv.second.kind != JsonValue::String) throw_error(idx + ": weight_map entry '" + kv.first + "' is not a string");
      const std::string& f = kv.second.str;
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        throw_error(idx + ": weight_map names file '" + f + "', which is not a plain file name in the directory");
      if (seen.insert(f).second) {
        if (!file_exists(dir + "/" + f)) throw_error(idx + ": shard '" + f + "' is missing from " + dir);
        files.push_back(dir + "/" + f);
      }
    }
    if (files.empty()) throw_error(idx + ": weight_map is empty");
    return files;
  }
  std::string single = dir + "/model.safetensors";
  if (file_exists(single)) return {single};
  throw_error(dir + ": no model.safetensors or model.safetensors.index.json");
}

}  // namespace itool

// The addon's entry: every binding file registers itself with ITOOL_REGISTER.
#include "util.h"

static Napi::Object ItoolInit(Napi::Env env, Napi::Object exports) {
  for (auto& entry : itool::addon::registry()) entry.second(env, exports);
  return exports;
}

NODE_API_MODULE(itool, ItoolInit)

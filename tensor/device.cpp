// device.cpp — parsing device names.
#include "tensor/device.h"

#include "tensor/error.h"

namespace lory {

Device device_from_string(const std::string& s) {
  if (s == "cpu") return cpu_device();
  if (s == "cuda") return cuda_device(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string index = s.substr(5);
    LORY_CHECK(!index.empty() && index.find_first_not_of("0123456789") == std::string::npos,
               "bad device '", s, "' (expected cpu, cuda or cuda:N)");
    return cuda_device(std::stoi(index));
  }
  fail("bad device '", s, "' (expected cpu, cuda or cuda:N)");
}

}  // namespace lory

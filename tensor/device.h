// device.h — where a tensor's storage lives: the host ("cpu") or one GPU ("cuda:N").
#pragma once

#include <cstdint>
#include <string>

namespace lory {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string str() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
};

inline Device cpu_device() { return Device{DeviceType::cpu, 0}; }
inline Device cuda_device(int index = 0) { return Device{DeviceType::cuda, index}; }
// Parses "cpu", "cuda", "cuda:1".
Device device_from_string(const std::string& s);

}  // namespace lory

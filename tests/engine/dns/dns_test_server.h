// Test helpers for engine/dns: DNS wire builders and a tiny authoritative DNS server on
// 127.0.0.1 (UDP, an ephemeral port, its own thread) answering from tables. Responses are
// built by hand: header, the question echoed, answers whose owner is the compression
// pointer 0xC00C (the question name), an optional SOA in the authority section.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace salvo::dns::dnstest {

constexpr std::uint16_t kTypeA = 1;
constexpr std::uint16_t kTypeSoa = 6;
constexpr std::uint16_t kTypeMx = 15;
constexpr std::uint16_t kTypeAaaa = 28;
constexpr std::uint8_t kRcodeNoError = 0;
constexpr std::uint8_t kRcodeServFail = 2;
constexpr std::uint8_t kRcodeNxDomain = 3;
constexpr std::uint8_t kRcodeRefused = 5;

using Bytes = std::vector<std::uint8_t>;

inline void put16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v & 0xFF));
}

inline void put32(Bytes& out, std::uint32_t v) {
  put16(out, static_cast<std::uint16_t>(v >> 16));
  put16(out, static_cast<std::uint16_t>(v & 0xFFFF));
}

// "mx1.example.test" -> 3mx14example4test0; "" and "." -> the root label 0.
inline Bytes encodeName(const std::string& name) {
  Bytes out;
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) {
      dot = name.size();
    }
    if (dot > start) {
      out.push_back(static_cast<std::uint8_t>(dot - start));
      out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
                 name.begin() + static_cast<std::ptrdiff_t>(dot));
    }
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

inline Bytes mxRdata(std::uint16_t preference, const std::string& host) {
  Bytes out;
  put16(out, preference);
  Bytes name = encodeName(host);
  out.insert(out.end(), name.begin(), name.end());
  return out;
}

inline Bytes ipRdata(const std::string& ip) {
  Bytes out(ip.find(':') == std::string::npos ? 4 : 16);
  if (inet_pton(out.size() == 4 ? AF_INET : AF_INET6, ip.c_str(), out.data()) != 1) {
    throw std::invalid_argument("not an IP literal: " + ip);
  }
  return out;
}

inline Bytes soaRdata(std::uint32_t minimum) {
  Bytes out = encodeName("ns.example.test");
  Bytes rname = encodeName("hostmaster.example.test");
  out.insert(out.end(), rname.begin(), rname.end());
  put32(out, 2024010101);  // serial
  put32(out, 3600);        // refresh
  put32(out, 600);         // retry
  put32(out, 86400);       // expire
  put32(out, minimum);
  return out;
}

struct TestRecord {
  std::uint16_t type = 0;
  std::uint32_t ttl = 0;
  Bytes rdata;
};

// A response to a query for `name`/`type`: answers owned by the question name (0xC00C).
inline Bytes buildResponse(std::uint16_t id, std::uint8_t rcode, const std::string& name,
                           std::uint16_t type, const std::vector<TestRecord>& answers,
                           const std::vector<TestRecord>& authority = {}) {
  Bytes out;
  put16(out, id);
  put16(out, static_cast<std::uint16_t>(0x8000 | 0x0400 | 0x0100 | 0x0080 | rcode));  // QR AA RD RA
  put16(out, 1);
  put16(out, static_cast<std::uint16_t>(answers.size()));
  put16(out, static_cast<std::uint16_t>(authority.size()));
  put16(out, 0);
  Bytes qname = encodeName(name);
  out.insert(out.end(), qname.begin(), qname.end());
  put16(out, type);
  put16(out, 1);  // IN
  auto putRecord = [&out](const TestRecord& r) {
    out.push_back(0xC0);
    out.push_back(0x0C);
    put16(out, r.type);
    put16(out, 1);
    put32(out, r.ttl);
    put16(out, static_cast<std::uint16_t>(r.rdata.size()));
    out.insert(out.end(), r.rdata.begin(), r.rdata.end());
  };
  for (const TestRecord& r : answers) {
    putRecord(r);
  }
  for (const TestRecord& r : authority) {
    putRecord(r);
  }
  return out;
}

class TestDnsServer {
 public:
  enum class Behaviour {
    Answer,     // records of the asked type, or NOERROR with no answer (NODATA)
    NxDomain,   // rcode 3
    ServFail,   // rcode 2
    Refused,    // rcode 5
    Silent,     // never answers
    DropFirst,  // ignores the first query for the name, then answers normally
  };

  TestDnsServer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0;
    socklen_t len = sizeof(sin);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0 || ::pipe(wake_) != 0) {
      throw std::runtime_error("test DNS server: cannot bind 127.0.0.1");
    }
    port_ = ntohs(sin.sin_port);
  }

  ~TestDnsServer() {
    if (thread_.joinable()) {
      char byte = 0;
      (void)!::write(wake_[1], &byte, 1);
      thread_.join();
    }
    ::close(fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Table set-up; call before start().
  void add(const std::string& name, TestRecord record) {
    zone_[lower(name)].records.push_back(std::move(record));
  }
  void addMx(const std::string& name, std::uint16_t preference, const std::string& host,
             std::uint32_t ttl) {
    add(name, TestRecord{kTypeMx, ttl, mxRdata(preference, host)});
  }
  void addIp(const std::string& name, const std::string& ip, std::uint32_t ttl) {
    Bytes rdata = ipRdata(ip);
    add(name, TestRecord{rdata.size() == 4 ? kTypeA : kTypeAaaa, ttl, rdata});
  }
  // An SOA in the authority section of negative answers for `name` (RFC 2308).
  void setSoa(const std::string& name, std::uint32_t ttl, std::uint32_t minimum) {
    zone_[lower(name)].soa = {TestRecord{kTypeSoa, ttl, soaRdata(minimum)}};
  }
  void setBehaviour(const std::string& name, Behaviour behaviour) {
    zone_[lower(name)].behaviour = behaviour;
  }
  // Called on the server thread for every query received, answered or not. Any time.
  void onQuery(std::function<void(const std::string& name, std::uint16_t type)> fn) {
    std::lock_guard<std::mutex> lock(hookMutex_);
    onQuery_ = std::move(fn);
  }

  void start() {
    thread_ = std::thread([this] { serve(); });
  }

  int queries() const { return queries_.load(); }

 private:
  struct Entry {
    Behaviour behaviour = Behaviour::Answer;
    std::vector<TestRecord> records;
    std::vector<TestRecord> soa;  // zero or one
    int seen = 0;
  };

  static std::string lower(std::string s) {
    for (char& c : s) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (!s.empty() && s.back() == '.') {
      s.pop_back();
    }
    return s;
  }

  void serve() {
    for (;;) {
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        continue;
      }
      if (fds[1].revents != 0) {
        return;
      }
      std::uint8_t buf[1500];
      sockaddr_storage peer{};
      socklen_t peerLen = sizeof(peer);
      ssize_t n =
          ::recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &peerLen);
      if (n < 12) {
        continue;
      }
      std::uint16_t id = static_cast<std::uint16_t>((buf[0] << 8) | buf[1]);
      // The question: labels (queries carry no compression), then QTYPE and QCLASS.
      std::string name;
      std::size_t pos = 12;
      while (pos < static_cast<std::size_t>(n) && buf[pos] != 0) {
        std::size_t labelLen = buf[pos];
        if (pos + 1 + labelLen > static_cast<std::size_t>(n)) {
          break;
        }
        if (!name.empty()) {
          name += '.';
        }
        name.append(reinterpret_cast<const char*>(buf + pos + 1), labelLen);
        pos += 1 + labelLen;
      }
      if (pos + 5 > static_cast<std::size_t>(n)) {
        continue;
      }
      std::uint16_t qtype = static_cast<std::uint16_t>((buf[pos + 1] << 8) | buf[pos + 2]);
      name = lower(name);
      queries_.fetch_add(1);

      Bytes response;
      bool reply = true;
      auto it = zone_.find(name);
      if (it == zone_.end()) {
        response = buildResponse(id, kRcodeNxDomain, name, qtype, {});
      } else {
        Entry& entry = it->second;
        ++entry.seen;
        switch (entry.behaviour) {
          case Behaviour::NxDomain:
            response = buildResponse(id, kRcodeNxDomain, name, qtype, {}, entry.soa);
            break;
          case Behaviour::ServFail:
            response = buildResponse(id, kRcodeServFail, name, qtype, {});
            break;
          case Behaviour::Refused:
            response = buildResponse(id, kRcodeRefused, name, qtype, {});
            break;
          case Behaviour::Silent:
            reply = false;
            break;
          case Behaviour::DropFirst:
          case Behaviour::Answer: {
            if (entry.behaviour == Behaviour::DropFirst && entry.seen == 1) {
              reply = false;
              break;
            }
            std::vector<TestRecord> answers;
            for (const TestRecord& r : entry.records) {
              if (r.type == qtype) {
                answers.push_back(r);
              }
            }
            response = buildResponse(id, kRcodeNoError, name, qtype, answers,
                                     answers.empty() ? entry.soa : std::vector<TestRecord>{});
            break;
          }
        }
      }
      if (reply) {
        ::sendto(fd_, response.data(), response.size(), 0, reinterpret_cast<sockaddr*>(&peer),
                 peerLen);
      }
      std::function<void(const std::string&, std::uint16_t)> hook;
      {
        std::lock_guard<std::mutex> lock(hookMutex_);
        hook = onQuery_;
      }
      if (hook) {
        hook(name, qtype);
      }
    }
  }

  int fd_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::map<std::string, Entry> zone_;  // touched only by the server thread once started
  std::mutex hookMutex_;
  std::function<void(const std::string&, std::uint16_t)> onQuery_;
  std::atomic<int> queries_{0};
  std::thread thread_;
};

}  // namespace salvo::dns::dnstest

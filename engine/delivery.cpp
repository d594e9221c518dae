#include "engine/delivery.h"

#include <chrono>

namespace salvo::engine {

smtp::TlsPolicy tlsPolicyFor(campaigns::TlsMode mode) {
  switch (mode) {
    case campaigns::TlsMode::None:
      return smtp::TlsPolicy::Disabled;
    case campaigns::TlsMode::Opportunistic:
      return smtp::TlsPolicy::Opportunistic;
    case campaigns::TlsMode::Required:
      return smtp::TlsPolicy::Required;
    case campaigns::TlsMode::Verify:
      return smtp::TlsPolicy::Verify;
  }
  return smtp::TlsPolicy::Opportunistic;
}

void applyDeliveryConfig(const campaigns::DeliveryConfig& config, DeliverySettings& settings) {
  using std::chrono::milliseconds;
  smtp::SessionTimeouts& t = settings.session.timeouts;
  const campaigns::SmtpTimeoutsConfig& c = config.timeouts;
  t.greeting = milliseconds(c.greetingMs);
  t.mail = milliseconds(c.mailMs);
  t.rcpt = milliseconds(c.rcptMs);
  t.data = milliseconds(c.dataMs);
  t.dataBlock = milliseconds(c.dataBlockMs);
  t.dot = milliseconds(c.dotMs);
  settings.session.tls = tlsPolicyFor(config.tls);
  settings.tlsContext = net::TlsContext::createClient(config.tlsCaFile, settings.tlsContextError);
}

}  // namespace salvo::engine

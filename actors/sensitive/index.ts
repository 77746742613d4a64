export { SensitiveMatcher, foldForMatching, type SensitiveMatch } from './matcher.ts';
export {
  DEFAULT_REMINDER,
  SENSITIVE_LIMITS,
  checkMessage,
  matcherFor,
  sensitiveWordError,
  validateSensitiveConfig,
  type SensitiveConfig,
  type SensitiveVerdict,
} from './config.ts';

export { foldSession } from './facts.ts';
export type { SessionFacts, SessionType } from './facts.ts';
export {
  METRICS,
  DIMENSIONS,
  MAX_REPORT_DAYS,
  MAX_REPORT_METRICS,
  MAX_REPORT_DIMENSIONS,
  parseReportSpec,
  runReport,
  drillDown,
} from './report.ts';
export type { MetricId, DimensionId, Granularity, ReportSpec, ReportRow, Report, Basis } from './report.ts';
export { ANALYTICS_KIND, analyticsKey } from './actor.ts';
export type { AnalyticsMsg, ReportAnswer, DrillAnswer } from './actor.ts';

/** URL of the product module (service desk + analytics) the runtime loads on every thread. */
export const PRODUCT_MODULE = new URL('./product.ts', import.meta.url);

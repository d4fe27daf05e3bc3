// What people look at: status, logs, the report, the live view, progress. Other rooms import from
// here, by name.
export { BrokerViewFile, type BrokerViewRecord, readBrokerView } from './brokerView.js';
export {
  describeFilter,
  type FailureGroup,
  formatGroups,
  type GroupFilter,
  groupFailures,
  selectGroups,
} from './failureGroups.js';
export { formatStatus } from './formatStatus.js';
export { showLogs } from './logs.js';
export { buildReport } from './report.js';
export { runStatus } from './status.js';

// How long commands took in earlier runs of the state dir: the duration index, and the forecasts
// made from it. Other rooms import from here, by name.
export { DurationHistory, type HistoryLoad } from './durationHistory.js';
export { type ForecastInput, forecastMs, medianOf, PhaseForecast } from './forecast.js';
export {
  fetchLedgersFor,
  type LedgersFetched,
  ledgerKey,
  ledgersPrefix,
  uploadLedgerFor,
} from './s3Ledgers.js';

// The local pool and RabbitMQ behind one Transport: how tasks travel. Other rooms import from
// here, by name.
export { localPool, openTransport, usesBroker } from './openTransport.js';
export type { QueueView, RunEnd, Transport, TransportListener } from './transport.js';

/** The test broker helpers live with the scripts, so `npm run bench` can start a node too. */
export {
  brokerVersion,
  freePort,
  PrivateNode,
  startTestBroker,
  TEST_BROKER_LINE,
  type TestBroker,
} from '../../scripts/rabbitmqNode.js';

/** The test broker helpers live with the scripts, so `npm run bench` can start a node too. */
export {
  freePort,
  PrivateNode,
  startTestBroker,
  type TestBroker,
} from '../../scripts/rabbitmqNode.js';

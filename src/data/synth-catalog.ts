// The synthetic generator's catalog: tools over domains, the paraphrase templates of each
// intent, and the value pools. Templates are verb phrases with {slot}s; `t` lists training
// phrasings, `h` held-out phrasings used only by the test split. Optional parameters add a
// fragment (`o`: [training fragments, held-out fragments]) when the sample includes them.

export type ParamKind = 'int' | 'float' | 'string' | 'enum' | 'bool' | 'list' | 'object';

export interface ParamSpec {
  name: string;
  kind: ParamKind;
  desc: string;
  /** optional parameters have a default and are left out unless the query asks for them */
  optional?: boolean;
  default?: unknown;
  /** value pool name (string, list items) */
  pool?: string;
  /** enum values */
  values?: string[];
  /** int / float range (inclusive); floats are drawn in tenths */
  min?: number;
  max?: number;
  /** list: item kind ('string' from pool, or 'float'/'int' in range); 2-3 items */
  items?: 'string' | 'int' | 'float';
  /** object: its fields (all required) */
  fields?: ParamSpec[];
  /** bool: the words the query uses for true/false (required bools); optional bools appear only when true */
  yes?: string;
  no?: string;
}

export interface ToolSpec {
  domain: string;
  name: string;
  desc: string;
  params: ParamSpec[];
  /** training phrasings */
  t: string[];
  /** held-out phrasings (test split only) */
  h: string[];
  /** optional parameter fragments: [training, held-out] */
  o?: Record<string, [string[], string[]]>;
  /** the fake result a multi-turn conversation shows after the call */
  result?: string;
}

const s = (name: string, desc: string, pool: string, extra: Partial<ParamSpec> = {}): ParamSpec => ({ name, kind: 'string', desc, pool, ...extra });
const i = (name: string, desc: string, min: number, max: number, extra: Partial<ParamSpec> = {}): ParamSpec => ({ name, kind: 'int', desc, min, max, ...extra });
const f = (name: string, desc: string, min: number, max: number, extra: Partial<ParamSpec> = {}): ParamSpec => ({ name, kind: 'float', desc, min, max, ...extra });
const e = (name: string, desc: string, values: string[], extra: Partial<ParamSpec> = {}): ParamSpec => ({ name, kind: 'enum', desc, values, ...extra });
const b = (name: string, desc: string, extra: Partial<ParamSpec> = {}): ParamSpec => ({ name, kind: 'bool', desc, ...extra });

export const TOOLS: ToolSpec[] = [
  // ---- weather
  {
    domain: 'weather', name: 'get_weather', desc: 'Current weather in a city',
    params: [s('city', 'City name', 'city'), e('unit', 'Temperature unit', ['celsius', 'fahrenheit'], { optional: true, default: 'celsius' })],
    t: ['get the weather in {city}', 'check the current weather for {city}', 'tell me the weather in {city}'],
    h: ['find out how the weather is in {city}'],
    o: { unit: [[' in {unit}', ' using {unit}'], [' with {unit} degrees']] },
  },
  {
    domain: 'weather', name: 'get_forecast', desc: 'Weather forecast for the next days',
    params: [s('city', 'City name', 'city'), i('days', 'Number of days', 1, 14)],
    t: ['get the {days}-day forecast for {city}', 'show the forecast in {city} for {days} days', 'forecast the weather in {city} for the next {days} days'],
    h: ['predict the weather of {city} over {days} days'],
  },
  {
    domain: 'weather', name: 'get_air_quality', desc: 'Air quality index of a city',
    params: [s('city', 'City name', 'city'), b('include_pollen', 'Also report pollen', { optional: true, default: false })],
    t: ['check the air quality in {city}', 'get the air quality index for {city}', 'tell me how clean the air is in {city}'],
    h: ['measure the air pollution in {city}'],
    o: { include_pollen: [[' with pollen levels', ' including pollen'], [' plus the pollen count']] },
  },
  // ---- travel
  {
    domain: 'travel', name: 'search_flights', desc: 'Search flights between two cities on a date',
    params: [s('origin', 'Departure city', 'city'), s('destination', 'Arrival city', 'city'), s('date', 'Date (YYYY-MM-DD)', 'date'), i('passengers', 'Number of passengers', 1, 6, { optional: true, default: 1 })],
    t: ['find flights from {origin} to {destination} on {date}', 'search for a flight from {origin} to {destination} on {date}', 'look up flights {origin} to {destination} for {date}'],
    h: ['get me a plane from {origin} to {destination} on {date}'],
    o: { passengers: [[' for {passengers} passengers', ' for {passengers} people'], [' with {passengers} travellers']] },
  },
  {
    domain: 'travel', name: 'book_hotel', desc: 'Book a hotel room',
    params: [s('city', 'City name', 'city'), i('nights', 'Number of nights', 1, 14), i('guests', 'Number of guests', 1, 6, { optional: true, default: 2 })],
    t: ['book a hotel in {city} for {nights} nights', 'reserve a hotel room in {city} for {nights} nights', 'get me a hotel in {city} for {nights} nights'],
    h: ['arrange {nights} nights of lodging in {city}'],
    o: { guests: [[' for {guests} guests', ' for {guests} people'], [' with {guests} occupants']] },
  },
  {
    domain: 'travel', name: 'get_directions', desc: 'Directions between two places',
    params: [s('origin', 'Start place', 'city'), s('destination', 'End place', 'city'), e('mode', 'Travel mode', ['driving', 'walking', 'transit', 'cycling'], { optional: true, default: 'driving' })],
    t: ['get directions from {origin} to {destination}', 'show me the route from {origin} to {destination}', 'find the way from {origin} to {destination}'],
    h: ['navigate me from {origin} towards {destination}'],
    o: { mode: [[' by {mode}', ' for {mode}'], [' using {mode} mode']] },
  },
  {
    domain: 'travel', name: 'call_taxi', desc: 'Call a taxi to a pickup place',
    params: [s('pickup', 'Pickup address', 'street'), i('passengers', 'Number of passengers', 1, 6, { optional: true, default: 1 })],
    t: ['call a taxi to {pickup}', 'order a cab at {pickup}', 'send a taxi to {pickup}'],
    h: ['get a ride picking me up at {pickup}'],
    o: { passengers: [[' for {passengers} people', ' for {passengers} passengers'], [' seating {passengers}']] },
  },
  // ---- finance
  {
    domain: 'finance', name: 'convert_currency', desc: 'Convert an amount between currencies',
    params: [f('amount', 'Amount to convert', 1, 5000), e('from_currency', 'Source currency', ['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD']), e('to_currency', 'Target currency', ['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD'])],
    t: ['convert {amount} {from_currency} to {to_currency}', 'change {amount} {from_currency} into {to_currency}', 'work out {amount} {from_currency} in {to_currency}'],
    h: ['exchange {amount} {from_currency} for {to_currency}'],
  },
  {
    domain: 'finance', name: 'get_stock_price', desc: 'Latest price of a stock',
    params: [s('symbol', 'Ticker symbol', 'ticker')],
    t: ['get the stock price of {symbol}', 'check the share price for {symbol}', 'tell me what {symbol} is trading at'],
    h: ['quote the stock {symbol}'],
    result: '{"price": 182.5}',
  },
  {
    domain: 'finance', name: 'calculate_loan', desc: 'Monthly payment of a loan',
    params: [f('principal', 'Loan amount', 1000, 90000), f('rate', 'Yearly interest rate in percent', 1, 12), i('years', 'Term in years', 1, 30)],
    t: ['calculate the monthly payment on a {principal} loan at {rate} percent over {years} years', 'work out a loan of {principal} at {rate}% for {years} years', 'compute payments for borrowing {principal} at {rate} percent for {years} years'],
    h: ['estimate my installment for {principal} at {rate} percent across {years} years'],
  },
  {
    domain: 'finance', name: 'transfer_money', desc: 'Send money to a contact',
    params: [s('recipient', 'Who receives it', 'person'), f('amount', 'Amount', 1, 2000), s('note', 'Note for the recipient', 'note', { optional: true, default: '' })],
    t: ['transfer {amount} to {recipient}', 'send {amount} dollars to {recipient}', 'pay {recipient} {amount}'],
    h: ['wire {recipient} the sum of {amount}'],
    o: { note: [[' with the note {note}', ' saying {note}'], [' memo {note}']] },
  },
  // ---- shopping
  {
    domain: 'shopping', name: 'search_products', desc: 'Search the shop',
    params: [s('query', 'What to look for', 'product'), f('max_price', 'Highest price', 5, 900, { optional: true, default: null }), e('sort', 'Sort order', ['price', 'rating', 'newest'], { optional: true, default: 'rating' })],
    t: ['search the shop for {query}', 'find {query} in the store', 'look for {query} to buy'],
    h: ['browse the catalogue for {query}'],
    o: { max_price: [[' under {max_price}', ' below {max_price} dollars'], [' cheaper than {max_price}']], sort: [[' sorted by {sort}', ' by {sort}'], [' ordered by {sort}']] },
  },
  {
    domain: 'shopping', name: 'add_to_cart', desc: 'Add a product to the cart',
    params: [s('product', 'Product name', 'product'), i('quantity', 'How many', 1, 9, { optional: true, default: 1 })],
    t: ['add {product} to my cart', 'put {product} in the cart', 'add {product} to the basket'],
    h: ['place {product} into my shopping cart'],
    o: { quantity: [[' times {quantity}', ', {quantity} of them'], [' in a quantity of {quantity}']] },
  },
  {
    domain: 'shopping', name: 'track_order', desc: 'Status of an order',
    params: [s('order_id', 'Order number', 'order')],
    t: ['track order {order_id}', 'find out where order {order_id} is', 'check the status of order {order_id}'],
    h: ['follow the delivery of order {order_id}'],
    result: '{"status": "shipped"}',
  },
  {
    domain: 'shopping', name: 'ship_package', desc: 'Ship a package to an address',
    params: [{ name: 'address', kind: 'object', desc: 'Destination', fields: [s('street', 'Street', 'street'), s('city', 'City', 'city')] }, f('weight_kg', 'Weight in kg', 1, 40)],
    t: ['ship a {weight_kg} kg package to {street}, {city}', 'send a parcel of {weight_kg} kg to {street} in {city}', 'mail {weight_kg} kg to {street}, {city}'],
    h: ['dispatch a {weight_kg} kg box to {street} at {city}'],
  },
  // ---- music
  {
    domain: 'music', name: 'play_song', desc: 'Play a song',
    params: [s('title', 'Song title', 'song'), s('artist', 'Artist', 'artist', { optional: true, default: '' })],
    t: ['play {title}', 'put on the song {title}', 'start playing {title}'],
    h: ['queue up the track {title}'],
    o: { artist: [[' by {artist}', ' from {artist}'], [' performed by {artist}']] },
  },
  {
    domain: 'music', name: 'create_playlist', desc: 'Create a playlist with songs',
    params: [s('name', 'Playlist name', 'playlist'), { name: 'songs', kind: 'list', desc: 'Song titles', items: 'string', pool: 'song' }],
    t: ['create a playlist {name} with {songs}', 'make a playlist called {name} containing {songs}', 'build the playlist {name} from {songs}'],
    h: ['assemble a {name} playlist out of {songs}'],
  },
  {
    domain: 'music', name: 'set_volume', desc: 'Set the speaker volume',
    params: [i('level', 'Volume from 0 to 100', 0, 100)],
    t: ['set the volume to {level}', 'change the volume to {level}', 'turn the volume to {level}'],
    h: ['adjust the loudness to {level}'],
  },
  // ---- calendar
  {
    domain: 'calendar', name: 'create_event', desc: 'Add an event to the calendar',
    params: [s('title', 'Event title', 'event'), s('date', 'Date (YYYY-MM-DD)', 'date'), s('time', 'Start time (HH:MM)', 'time', { optional: true, default: '09:00' })],
    t: ['add {title} to my calendar on {date}', 'schedule {title} on {date}', 'create an event {title} for {date}'],
    h: ['put {title} in the diary for {date}'],
    o: { time: [[' at {time}', ' starting {time}'], [' beginning at {time}']] },
  },
  {
    domain: 'calendar', name: 'list_events', desc: 'Events on a day',
    params: [s('date', 'Date (YYYY-MM-DD)', 'date')],
    t: ['list my events on {date}', 'show my calendar for {date}', 'list what is on my schedule on {date}'],
    h: ['read out my agenda of {date}'],
    result: '{"events": 2}',
  },
  {
    domain: 'calendar', name: 'set_reminder', desc: 'Remind me after some minutes',
    params: [s('text', 'What to remember', 'task'), i('minutes', 'Minutes from now', 1, 180)],
    t: ['remind me to {text} in {minutes} minutes', 'set a reminder to {text} in {minutes} minutes', 'in {minutes} minutes remind me to {text}'],
    h: ['nudge me after {minutes} minutes to {text}'],
  },
  {
    domain: 'calendar', name: 'invite_people', desc: 'Invite people to a meeting',
    params: [s('meeting', 'Meeting title', 'event'), { name: 'people', kind: 'list', desc: 'Who to invite', items: 'string', pool: 'person' }],
    t: ['invite {people} to {meeting}', 'send an invite for {meeting} to {people}', 'add {people} to the {meeting} invite'],
    h: ['get {people} onto the {meeting} guest list'],
  },
  // ---- messaging
  {
    domain: 'messaging', name: 'send_email', desc: 'Send an email',
    params: [s('to', 'Recipient', 'person'), s('subject', 'Subject line', 'subject'), b('urgent', 'Mark as urgent', { optional: true, default: false })],
    t: ['email {to} about {subject}', 'send an email to {to} with subject {subject}', 'write {to} an email about {subject}'],
    h: ['drop {to} a mail regarding {subject}'],
    o: { urgent: [[' and mark it urgent', ' as urgent'], [' flagged high priority']] },
  },
  {
    domain: 'messaging', name: 'send_text', desc: 'Send a text message',
    params: [s('contact', 'Contact name', 'person'), s('message', 'Message text', 'note')],
    t: ['text {contact} {message}', 'send {contact} a message saying {message}', 'message {contact}: {message}'],
    h: ['let {contact} know via sms: {message}'],
  },
  {
    domain: 'messaging', name: 'get_unread', desc: 'Unread messages',
    params: [i('limit', 'How many to show', 1, 50, { optional: true, default: 10 })],
    t: ['show my unread messages', 'check my unread messages', 'list unread messages'],
    h: ['fetch whatever messages I have not read'],
    o: { limit: [[', at most {limit}', ', the last {limit}'], [' up to {limit} of them']] },
    result: '{"unread": 3}',
  },
  {
    domain: 'messaging', name: 'block_contact', desc: 'Block a contact',
    params: [s('contact', 'Contact name', 'person')],
    t: ['block {contact}', 'block the contact {contact}', 'stop {contact} from messaging me'],
    h: ['prevent {contact} from reaching me'],
  },
  // ---- math
  {
    domain: 'math', name: 'calculate_area', desc: 'Area of a shape',
    params: [e('shape', 'Shape', ['rectangle', 'triangle', 'parallelogram']), { name: 'size', kind: 'object', desc: 'Dimensions', fields: [f('width', 'Width', 1, 90), f('height', 'Height', 1, 90)] }],
    t: ['calculate the area of a {shape} {width} wide and {height} high', 'find the area of a {width} by {height} {shape}', 'compute the {shape} area with width {width} and height {height}'],
    h: ['measure how much surface a {shape} of {width} x {height} covers'],
  },
  {
    domain: 'math', name: 'solve_quadratic', desc: 'Roots of a x^2 + b x + c',
    params: [i('a', 'Coefficient a', -9, 9), i('b', 'Coefficient b', -20, 20), i('c', 'Coefficient c', -30, 30)],
    t: ['solve the quadratic with a={a}, b={b}, c={c}', 'find the roots for a {a}, b {b}, c {c}', 'solve {a}x^2 + {b}x + {c}'],
    h: ['get the zeros of the quadratic a={a} b={b} c={c}'],
  },
  {
    domain: 'math', name: 'compute_average', desc: 'Mean of numbers',
    params: [{ name: 'numbers', kind: 'list', desc: 'Numbers', items: 'int', min: 1, max: 99 }],
    t: ['average {numbers}', 'compute the mean of {numbers}', 'find the average of {numbers}'],
    h: ['tell me the arithmetic mean of {numbers}'],
  },
  {
    domain: 'math', name: 'convert_units', desc: 'Convert a quantity between units',
    params: [f('value', 'Quantity', 1, 500), e('from_unit', 'Unit of the value', ['km', 'mile', 'kg', 'lb']), e('to_unit', 'Target unit', ['km', 'mile', 'kg', 'lb'])],
    t: ['convert {value} {from_unit} to {to_unit}', 'change {value} {from_unit} into {to_unit}', 'express {value} {from_unit} in {to_unit}'],
    h: ['turn {value} {from_unit} over to {to_unit}'],
  },
  // ---- sports
  {
    domain: 'sports', name: 'get_match_score', desc: 'Latest score of a team',
    params: [s('team', 'Team name', 'team')],
    t: ['get the latest score for {team}', 'fetch the score of the {team} game', 'show the last match score of {team}'],
    h: ['report the final result of the {team} game'],
    result: '{"score": "2-1"}',
  },
  {
    domain: 'sports', name: 'get_player_stats', desc: 'Season statistics of a player',
    params: [s('player', 'Player name', 'person'), i('season', 'Season year', 2000, 2024)],
    t: ['get the stats of {player} for {season}', 'show {player} statistics in {season}', 'look up how {player} played in {season}'],
    h: ['pull the {season} numbers for {player}'],
  },
  {
    domain: 'sports', name: 'get_standings', desc: 'League table',
    params: [e('league', 'League', ['NBA', 'NFL', 'MLB', 'NHL', 'EPL'])],
    t: ['show the {league} standings', 'get the {league} table', 'list the current {league} rankings'],
    h: ['display where teams sit in the {league}'],
  },
  // ---- food
  {
    domain: 'food', name: 'find_recipe', desc: 'Find a recipe',
    params: [s('ingredient', 'Main ingredient', 'ingredient'), i('max_minutes', 'Longest cooking time', 10, 120, { optional: true, default: 60 }), b('vegetarian', 'Vegetarian only', { optional: true, default: false })],
    t: ['find a recipe with {ingredient}', 'give me a recipe using {ingredient}', 'search recipes for {ingredient}'],
    h: ['suggest something to cook from {ingredient}'],
    o: { max_minutes: [[' under {max_minutes} minutes', ' in {max_minutes} minutes or less'], [' that takes at most {max_minutes} minutes']], vegetarian: [[' that is vegetarian', ', vegetarian'], [' without meat']] },
  },
  {
    domain: 'food', name: 'find_restaurant', desc: 'Find a restaurant',
    params: [s('city', 'City', 'city'), e('cuisine', 'Cuisine', ['italian', 'chinese', 'mexican', 'indian', 'japanese', 'thai']), e('price', 'Price level', ['low', 'medium', 'high'], { optional: true, default: 'medium' })],
    t: ['find a {cuisine} restaurant in {city}', 'look for {cuisine} food in {city}', 'search {city} for a {cuisine} place'],
    h: ['recommend somewhere {cuisine} to eat in {city}'],
    o: { price: [[' with {price} prices', ', price {price}'], [' in the {price} price range']] },
  },
  {
    domain: 'food', name: 'order_food', desc: 'Order food from a restaurant',
    params: [s('restaurant', 'Restaurant name', 'restaurant'), { name: 'items', kind: 'list', desc: 'Dishes', items: 'string', pool: 'dish' }],
    t: ['order {items} from {restaurant}', 'get {items} delivered from {restaurant}', 'place an order at {restaurant} for {items}'],
    h: ['have {restaurant} bring me {items}'],
  },
  // ---- health
  {
    domain: 'health', name: 'log_workout', desc: 'Log a workout',
    params: [e('activity', 'Activity', ['running', 'cycling', 'swimming', 'yoga', 'rowing']), i('minutes', 'Duration in minutes', 5, 180)],
    t: ['log {minutes} minutes of {activity}', 'record a {activity} workout of {minutes} minutes', 'add {activity} for {minutes} minutes to my log'],
    h: ['note down that I did {activity} for {minutes} minutes'],
  },
  {
    domain: 'health', name: 'calculate_bmi', desc: 'Body mass index',
    params: [f('weight_kg', 'Weight in kg', 40, 150), f('height_m', 'Height in metres', 1.4, 2.1)],
    t: ['calculate my BMI at {weight_kg} kg and {height_m} m', 'compute the BMI for {weight_kg} kg, {height_m} m tall', 'work out the BMI for {weight_kg} kg at {height_m} m'],
    h: ['work out body mass index given {weight_kg} kg with height {height_m} m'],
  },
  {
    domain: 'health', name: 'book_appointment', desc: 'Book a doctor appointment',
    params: [s('doctor', 'Doctor name', 'person'), s('date', 'Date (YYYY-MM-DD)', 'date')],
    t: ['book an appointment with Dr. {doctor} on {date}', 'make a doctor appointment with {doctor} for {date}', 'schedule me with Dr. {doctor} on {date}'],
    h: ['see if Dr. {doctor} can take me on {date} and book it'],
  },
  // ---- smart home
  {
    domain: 'home', name: 'set_thermostat', desc: 'Set the thermostat',
    params: [i('temperature', 'Target temperature', 15, 30), e('mode', 'Mode', ['heat', 'cool', 'auto'], { optional: true, default: 'auto' })],
    t: ['set the thermostat to {temperature}', 'change the heating to {temperature} degrees', 'make it {temperature} degrees inside'],
    h: ['bring the house to {temperature} degrees'],
    o: { mode: [[' in {mode} mode', ' on {mode}'], [' using the {mode} setting']] },
  },
  {
    domain: 'home', name: 'switch_light', desc: 'Turn a light on or off',
    params: [s('room', 'Room', 'room'), b('on', 'true: on, false: off', { yes: 'on', no: 'off' })],
    t: ['turn {on} the light in the {room}', 'switch {on} the {room} light', 'put the {room} lights {on}'],
    h: ['flip the {room} lamp {on}'],
  },
  {
    domain: 'home', name: 'lock_door', desc: 'Lock a door',
    params: [e('door', 'Which door', ['front', 'back', 'garage', 'side'])],
    t: ['lock the {door} door', 'make sure the {door} door is locked', 'lock up the {door} door'],
    h: ['secure the {door} entrance'],
  },
  // ---- movies
  {
    domain: 'movies', name: 'find_movie', desc: 'Information about a film',
    params: [s('title', 'Film title', 'movie'), i('year', 'Release year', 1960, 2024, { optional: true, default: null })],
    t: ['find the movie {title}', 'look up the film {title}', 'get details about the movie {title}'],
    h: ['dig up info on the picture {title}'],
    o: { year: [[' from {year}', ' released in {year}'], [' of {year}']] },
  },
  {
    domain: 'movies', name: 'get_showtimes', desc: 'Cinema showtimes',
    params: [s('movie', 'Film title', 'movie'), s('city', 'City', 'city')],
    t: ['get showtimes for {movie} in {city}', 'list the times {movie} plays in {city}', 'find cinema times of {movie} in {city}'],
    h: ['check screenings of {movie} around {city}'],
  },
  {
    domain: 'movies', name: 'rate_movie', desc: 'Rate a film',
    params: [s('title', 'Film title', 'movie'), i('stars', 'Rating from 1 to 5', 1, 5)],
    t: ['rate {title} {stars} stars', 'give {title} a rating of {stars}', 'score the movie {title} with {stars} stars'],
    h: ['award {title} {stars} out of 5'],
  },
  // ---- news
  {
    domain: 'news', name: 'get_headlines', desc: 'Top headlines on a topic',
    params: [e('topic', 'Topic', ['sports', 'technology', 'politics', 'business', 'science', 'health']), i('limit', 'How many', 1, 20, { optional: true, default: 5 })],
    t: ['get the {topic} headlines', 'show me the top {topic} news', 'list the latest {topic} headlines'],
    h: ['brief me on {topic} stories'],
    o: { limit: [[', {limit} of them', ', top {limit}'], [' limited to {limit}']] },
  },
  {
    domain: 'news', name: 'search_news', desc: 'Search news articles',
    params: [s('keyword', 'Search words', 'keyword'), i('days', 'Look back this many days', 1, 30, { optional: true, default: 7 })],
    t: ['search the news for {keyword}', 'find news articles about {keyword}', 'look up news on {keyword}'],
    h: ['scan recent reporting about {keyword}'],
    o: { days: [[' from the last {days} days', ' in the past {days} days'], [' over {days} days back']] },
  },
  // ---- files
  {
    domain: 'files', name: 'create_folder', desc: 'Create a folder',
    params: [s('path', 'Folder path', 'folder')],
    t: ['create the folder {path}', 'make a new directory {path}', 'add a folder at {path}'],
    h: ['set up a directory named {path}'],
  },
  {
    domain: 'files', name: 'delete_file', desc: 'Delete a file',
    params: [s('path', 'File path', 'file'), b('permanent', 'Skip the trash', { optional: true, default: false })],
    t: ['delete {path}', 'remove the file {path}', 'trash the file {path}'],
    h: ['get rid of the document {path}'],
    o: { permanent: [[' permanently', ' for good'], [' without keeping it in the bin']] },
  },
  {
    domain: 'files', name: 'share_file', desc: 'Share a file with people',
    params: [s('path', 'File path', 'file'), { name: 'users', kind: 'list', desc: 'Who gets access', items: 'string', pool: 'person' }, e('permission', 'Access level', ['read', 'write'], { optional: true, default: 'read' })],
    t: ['share {path} with {users}', 'give {users} access to {path}', 'send {path} to {users} as a shared file'],
    h: ['let {users} open {path}'],
    o: { permission: [[' with {permission} access', ' as {permission}'], [' granting {permission} rights']] },
  },
];

/** Value pools; every fourth entry is held out for the test split. */
export const POOLS: Record<string, string[]> = {
  city: ['Paris', 'Rome', 'Tokyo', 'Berlin', 'Madrid', 'Lisbon', 'Boston', 'Denver', 'Oslo', 'Vienna', 'Prague', 'Dublin', 'Sydney', 'Toronto', 'Seoul', 'Cairo', 'Lima', 'Austin', 'Chicago', 'Miami', 'Athens', 'Warsaw', 'Zurich', 'Milan', 'Nairobi', 'Hanoi', 'Quito', 'Perth', 'Geneva', 'Dallas', 'Seattle', 'Munich', 'Porto', 'Venice', 'Havana', 'Tunis'],
  street: ['12 Oak St', '5 Pine Rd', '88 Main St', '3 Elm Ave', '41 Lake Dr', '9 Hill Rd', '27 Park Ln', '14 Bay St', '60 King St', '2 Mill Rd', '31 Rose Ave', '7 High St', '19 Ash Ct', '55 Grove St', '23 Bridge Rd', '11 Cedar Ln'],
  person: ['Anna', 'Ben', 'Chloe', 'David', 'Emma', 'Felix', 'Grace', 'Hugo', 'Iris', 'Jack', 'Kara', 'Liam', 'Mia', 'Noah', 'Olga', 'Paul', 'Quinn', 'Rosa', 'Sam', 'Tara', 'Umar', 'Vera', 'Will', 'Yara', 'Zoe', 'Omar', 'Lena', 'Marco'],
  ticker: ['AAPL', 'MSFT', 'GOOG', 'AMZN', 'TSLA', 'NVDA', 'META', 'IBM', 'ORCL', 'INTC', 'AMD', 'NFLX', 'SAP', 'SONY', 'UBER', 'SHOP'],
  note: ['rent', 'lunch', 'thanks', 'see you soon', 'running late', 'dinner at 8', 'call me', 'happy birthday', 'tickets', 'gift', 'on my way', 'good luck'],
  product: ['headphones', 'a desk lamp', 'running shoes', 'a coffee maker', 'a backpack', 'a phone case', 'a yoga mat', 'a water bottle', 'a keyboard', 'sunglasses', 'a tent', 'a blender', 'a monitor', 'a kettle', 'a scarf', 'a charger'],
  order: ['A1042', 'B2210', 'C3317', 'D4021', 'E5530', 'F6612', 'G7704', 'H8891', 'J9013', 'K1288', 'L2356', 'M3470'],
  song: ['Blue Sky', 'Night Drive', 'Golden Hour', 'Paper Hearts', 'Slow River', 'Neon Lights', 'Summer Rain', 'Wild Fire', 'Echoes', 'Starlight', 'Ocean Eyes', 'Midnight Train', 'Silver Moon', 'Open Road', 'First Snow', 'Last Dance'],
  artist: ['Nova', 'The Tides', 'Luna Park', 'Red Fox', 'Kai', 'Aurora', 'The Vines', 'Mono', 'Jade', 'Sable', 'Indigo', 'Velvet'],
  playlist: ['Focus', 'Workout', 'Chill', 'Road Trip', 'Party', 'Sleep', 'Morning', 'Study', 'Dinner', 'Rainy Day', 'Gym', 'Retro'],
  event: ['team meeting', 'dentist visit', 'lunch with Sam', 'project review', 'yoga class', 'book club', 'budget call', 'code review', 'parent evening', 'piano lesson', 'sprint planning', 'board meeting'],
  date: [],
  time: ['08:30', '09:00', '10:15', '11:00', '12:30', '13:45', '14:00', '15:30', '16:00', '17:15', '18:00', '19:30'],
  task: ['call mom', 'take the pills', 'water the plants', 'buy milk', 'check the oven', 'feed the cat', 'stretch', 'send the report', 'pay the bill', 'walk the dog', 'pick up Ben', 'book tickets'],
  subject: ['the budget', 'the trip', 'the launch', 'the invoice', 'the party', 'the contract', 'the schedule', 'the report', 'the offer', 'the meeting notes', 'the demo', 'the hiring plan'],
  team: ['Lakers', 'Celtics', 'Bulls', 'Arsenal', 'Chelsea', 'Yankees', 'Dodgers', 'Packers', 'Eagles', 'Warriors', 'Rangers', 'Bruins', 'Sharks', 'Giants', 'Jets', 'Kings'],
  ingredient: ['chicken', 'tofu', 'salmon', 'lentils', 'mushrooms', 'rice', 'eggs', 'spinach', 'beef', 'pasta', 'potatoes', 'shrimp', 'beans', 'quinoa', 'pumpkin', 'lamb'],
  restaurant: ['Luigi', 'Golden Dragon', 'Taco Town', 'Curry House', 'Sushi Go', 'Bistro Nine', 'Green Bowl', 'Burger Barn', 'Pho King', 'Olive Tree', 'Noodle Bar', 'Pizza Roma'],
  dish: ['pizza', 'salad', 'soup', 'fries', 'noodles', 'dumplings', 'tacos', 'curry', 'burger', 'sushi', 'gnocchi', 'wrap', 'ramen', 'falafel', 'steak', 'pancakes'],
  room: ['kitchen', 'bedroom', 'living room', 'hallway', 'bathroom', 'office', 'garage', 'attic', 'nursery', 'porch', 'basement', 'study'],
  movie: ['Inception', 'Up', 'Alien', 'Heat', 'Jaws', 'Rocky', 'Frozen', 'Coco', 'Arrival', 'Gravity', 'Dune', 'Tenet', 'Vertigo', 'Amelie', 'Psycho', 'Clue'],
  keyword: ['climate', 'elections', 'AI', 'space', 'vaccines', 'housing', 'trade', 'energy', 'chess', 'bitcoin', 'wildfires', 'robots', 'oceans', 'tariffs', 'drought', 'rail'],
  folder: ['/work/reports', '/home/photos', '/tmp/build', '/docs/2024', '/music/live', '/projects/demo', '/data/raw', '/notes/ideas', '/backup/old', '/src/lib', '/home/videos', '/share/team'],
  file: ['/docs/plan.txt', '/home/cv.pdf', '/work/notes.md', '/data/sales.csv', '/photos/cat.jpg', '/tmp/log.txt', '/music/song.mp3', '/docs/budget.xlsx', '/src/main.py', '/home/todo.txt', '/work/slides.pdf', '/data/users.json'],
};

// dates: a fixed list, deterministic
{
  const months = ['01', '02', '03', '04', '05', '06', '07', '08', '09', '10', '11', '12'];
  const days = ['03', '07', '11', '14', '18', '22', '26', '29'];
  for (const m of months) for (const d of days) POOLS.date!.push(`2025-${m}-${d}`);
}

/** Sentence frames around a verb phrase: [training, held-out]. `{p}` is the phrase. */
export const FRAMES: [string[], string[]] = [
  ['{P}.', 'Please {p}.', 'Can you {p}?', 'I want you to {p}.', 'Could you {p} for me?', '{P}, please.', 'Hey, {p}.'],
  ['Kindly {p}.', "I'd like you to {p}."],
];

/** Joiners for two requests in one query: [training, held-out]. */
export const JOINERS: [string[], string[]] = [[' and ', ', and also ', ', then '], [' as well as ', ', plus ']];

/** Follow-up phrasings for the second turn of a multi-turn sample (`{v}` the new value): [training, held-out]. */
export const FOLLOWUPS: [string[], string[]] = [
  ['Now do the same for {v}.', 'What about {v}?', 'Same again with {v}.', 'And for {v}?'],
  ['Repeat that for {v}, please.'],
];

/** Requests no tool in the catalog serves (irrelevance when no fitting tool is offered): [training, held-out]. */
export const CHITCHAT: [string[], string[]] = [
  ['Tell me a joke.', 'Who wrote Hamlet?', 'What is the capital of Peru?', 'Write a short poem about cats.', 'How are you today?', 'Explain what gravity is.', 'Translate hello into French.', 'What is 7 times 8?', 'Give me a fun fact.', 'Summarize the plot of Cinderella.'],
  ['Why is the sky blue?', 'Recommend a good novel.', 'What does DNA stand for?'],
];

/** The answer when no offered tool fits. */
export const NO_TOOL_ANSWER = 'None of the available tools can help with that.';
